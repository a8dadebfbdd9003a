import { z } from 'zod';

/**
 * Protocol v1 schemas: the single source of the wire format. Types are inferred from these; the codec
 * (codec.ts) is the only place frames are parsed or serialised; docs/protocol.md is generated from them.
 */

/** The WebSocket subprotocol of this version. Clients that offer none get the same frames. */
export const SUBPROTOCOL = 'chat.v1';

/** A user id as it appears in `/chat/{userId}` and in frames. */
export const UserId = z
  .string()
  .regex(/^[A-Za-z0-9._@-]{1,128}$/, 'user ids are 1-128 characters of A-Z a-z 0-9 . _ @ -')
  .meta({ description: 'User id: 1-128 characters of A-Z, a-z, 0-9, dot, underscore, at sign, dash.' });

/** Client message id: chosen by the client, echoed in the ack, used to deduplicate retries. */
export const ClientMessageId = z
  .string()
  .min(1)
  .max(64)
  .meta({ description: 'Client message id, 1-64 characters, echoed in the ack.' });

export const Body = z.string().max(16_384).meta({ description: 'Message text, at most 16,384 characters.' });

// Client to server

export const SendFrame = z
  .strictObject({
    type: z.literal('send').meta({ description: 'Frame type.' }),
    cid: ClientMessageId.meta({
      description:
        'Client message id, 1-64 characters, unique per sender (use a UUID), echoed in the answer. A send ' +
        'repeated with the same `cid`, `to` and `body` within CHAT_NODE_SEND_DEDUP_WINDOW_MS (5 minutes) is a ' +
        'retry: it gets the first answer again (the same ack and `id`) and is not delivered again; after ' +
        '`NODE_ERR_BUS_UNAVAILABLE` or `NODE_ERR_BUS_TIMEOUT` it is sent again under the same `id`. The same ' +
        '`cid` with another `to` or `body` is another message.',
    }),
    to: UserId,
    body: Body,
  })
  .meta({ title: 'send', description: 'Client sends a direct message to user `to`.' });

/**
 * Seed-compatible direct message: no `type`, `sender_id` and `receiver_id`, and the seed's text. Only the
 * fields below reach the receiver: any other field is dropped (a sender could otherwise write
 * `"from":"admin"` into what a receiver shows). Also the shape read back from the bus, so a record from
 * an older node loses its extra fields too.
 */
export const LegacyDirectMessage = z
  .object({
    sender_id: z.string().meta({ description: 'Must be the connection’s own user id.' }),
    receiver_id: UserId,
    text: Body.optional().meta({
      description: 'Message text (the seed’s field), at most 16,384 characters.',
    }),
    body: Body.optional().meta({
      description:
        'Message text as v1 names it (what seed receivers get from v1 senders), at most 16,384 characters.',
    }),
    cid: ClientMessageId.optional().meta({
      description:
        'Client message id, 1-64 characters: the send is then answered with an `ack` (and retried safely).',
    }),
  })
  .meta({
    title: 'legacy direct message',
    description:
      'Seed format: a JSON object without `type`. Only the fields below reach the receiver; any other field is dropped.',
  });

export const AuthFrame = z
  .strictObject({
    type: z.literal('auth').meta({ description: 'Frame type.' }),
    cid: ClientMessageId.optional(),
    token: z.string().min(1).max(8192).meta({ description: 'A fresh token for the same user.' }),
  })
  .meta({
    title: 'auth',
    description:
      'Refreshes the connection’s token in-band before it expires (same `sub`); answered by `auth_ok` or an error.',
  });

export const ClientFrame = z.discriminatedUnion('type', [SendFrame, AuthFrame]);

// Server to client

export const AckStatus = z.enum(['delivered', 'accepted', 'offline']).meta({
  description:
    '`delivered`: written to every session of the receiver on this node. `accepted`: durably in the ' +
    'receiver’s shard log; the shard’s owner writes it to their sessions, or, while they reconnect, holds ' +
    'it for the handoff grace period (CHAT_NODE_HANDOFF_GRACE_MS) and writes it when they arrive. ' +
    '`offline`: only when true: the receiver has no session anywhere and had none within the presence ' +
    'grace period (CHAT_NODE_PRESENCE_GRACE_MS, also after their node died). When the node cannot know ' +
    '(its bus is not ready) the answer is the retryable error NODE_ERR_BUS_UNAVAILABLE, not `offline`.',
});

export const MessageFrame = z
  .strictObject({
    type: z.literal('message'),
    id: z.string().meta({ description: 'Server message id, unique per message.' }),
    from: UserId,
    to: UserId,
    body: Body,
    ts: z.number().int().meta({ description: 'Server receive time, milliseconds since the epoch.' }),
  })
  .meta({ title: 'message', description: 'A direct message delivered to the receiver.' });

export const AckFrame = z
  .strictObject({
    type: z.literal('ack'),
    cid: ClientMessageId.optional().meta({
      description: 'The `cid` of the send (absent for seed frames without one).',
    }),
    id: z.string().meta({
      description:
        'Server message id assigned to the message (the same on every node for a send retried with the same `cid`, `to` and `body`).',
    }),
    status: AckStatus,
  })
  .meta({ title: 'ack', description: 'The answer to a `send`.' });

export const ErrorFrame = z
  .strictObject({
    type: z.literal('error'),
    code: z.string().meta({ description: 'Stable error code, see docs/errors.md.' }),
    retryable: z.boolean().meta({ description: 'Whether sending the same frame again later can succeed.' }),
    message: z.string(),
    cid: ClientMessageId.optional(),
  })
  .meta({ title: 'error', description: 'A frame was refused or could not be delivered.' });

export const AuthOkFrame = z
  .strictObject({
    type: z.literal('auth_ok'),
    cid: ClientMessageId.optional(),
    exp: z.number().int().meta({ description: 'The new expiry, seconds since the epoch.' }),
  })
  .meta({
    title: 'auth_ok',
    description: 'The refreshed token was accepted; the session now lasts until `exp`.',
  });

export const ServerFrame = z.discriminatedUnion('type', [MessageFrame, AckFrame, ErrorFrame, AuthOkFrame]);

export type SendFrame = z.infer<typeof SendFrame>;
export type AuthFrame = z.infer<typeof AuthFrame>;
export type AuthOkFrame = z.infer<typeof AuthOkFrame>;
export type LegacyDirectMessage = z.infer<typeof LegacyDirectMessage>;
export type ClientFrame = z.infer<typeof ClientFrame>;
export type AckStatus = z.infer<typeof AckStatus>;
export type MessageFrame = z.infer<typeof MessageFrame>;
export type AckFrame = z.infer<typeof AckFrame>;
export type ErrorFrame = z.infer<typeof ErrorFrame>;
export type ServerFrame = z.infer<typeof ServerFrame>;

/** Every `type` a client may send in v1. */
export const CLIENT_FRAME_TYPES: ReadonlySet<string> = new Set(
  ClientFrame.options.map((o) => o.shape.type.value),
);
