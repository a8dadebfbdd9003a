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

/**
 * Where a message sits in its receiver's shard log (durable mode): the shard, the offset in the shard's
 * log, and the log's epoch (changes when the log is recreated, so an old position is never applied to a
 * new log). A client keeps the last one it received and names it when it reconnects (`since`).
 */
export const MessagePos = z
  .strictObject({
    shard: z.number().int().min(0).max(65_535),
    offset: z.number().int().min(0).max(Number.MAX_SAFE_INTEGER),
    epoch: z.string().regex(/^[A-Za-z0-9-]{1,64}$/),
  })
  .meta({
    description:
      'Durable mode only: where the message sits in its shard log, `{shard, offset, epoch}`. Keep the last one received and reconnect with `?since=<shard>:<offset>:<epoch>`.',
  });

export const MessageFrame = z
  .strictObject({
    type: z.literal('message'),
    id: z.string().meta({ description: 'Server message id, unique per message.' }),
    from: UserId,
    to: UserId,
    body: Body,
    ts: z.number().int().meta({ description: 'Server receive time, milliseconds since the epoch.' }),
    pos: MessagePos.optional(),
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

/** Why a resume could not be served (see `resumed`). */
export const ResumeFailure = z
  .enum(['too_old', 'epoch', 'shard', 'not_owner', 'not_durable', 'invalid'])
  .meta({
    description:
      '`too_old`: the position is older than what the node keeps (CHAT_NODE_RECOVERY_MAX_PER_SHARD records and ' +
      'CHAT_NODE_RECOVERY_TTL_MS per shard). `epoch`: the position is from another log (the topic was recreated). ' +
      '`shard`: the position is of another shard than the one this connection is placed by. `not_owner`: this ' +
      'node did not come to read the shard in time (CHAT_NODE_RECOVERY_WAIT_MS). `not_durable`: the cluster runs ' +
      'in fast mode, which keeps no positions. `invalid`: `since` is not `<shard>:<offset>:<epoch>`.',
  });

export const ResumedFrame = z
  .strictObject({
    type: z.literal('resumed'),
    recovered: z.boolean().meta({
      description:
        'true: no message to you after the named position is missing: those the node had read were written ' +
        'before this frame (`replayed`), and the rest of the log follows in order, each message once (a node ' +
        'that has just taken the shard may still be reading up to the log end). false: the gap cannot be ' +
        'filled (see `reason`); live messages follow.',
    }),
    replayed: z
      .number()
      .int()
      .min(0)
      .meta({ description: 'Messages written for the gap, before this frame.' }),
    reason: ResumeFailure.optional(),
  })
  .meta({
    title: 'resumed',
    description:
      'The answer to a connection opened with `?since=<shard>:<offset>:<epoch>` (durable mode): sent once, after the replayed messages. Nothing is written to the connection before it.',
  });

export const ServerFrame = z.discriminatedUnion('type', [
  MessageFrame,
  AckFrame,
  ErrorFrame,
  AuthOkFrame,
  ResumedFrame,
]);

/** A resume position as a client names it in the upgrade's `since` parameter: `<shard>:<offset>:<epoch>`. */
export function parseSince(value: string | null): z.infer<typeof MessagePos> | 'invalid' | undefined {
  if (value === null) return undefined;
  const match = /^(\d{1,5}):(\d{1,16}):([A-Za-z0-9-]{1,64})$/.exec(value);
  if (!match) return 'invalid';
  const parsed = MessagePos.safeParse({ shard: Number(match[1]), offset: Number(match[2]), epoch: match[3] });
  return parsed.success ? parsed.data : 'invalid';
}

/** The `since` value for a position (what a client sends back). */
export function formatSince(pos: z.infer<typeof MessagePos>): string {
  return `${pos.shard}:${pos.offset}:${pos.epoch}`;
}

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
export type MessagePos = z.infer<typeof MessagePos>;
export type ResumedFrame = z.infer<typeof ResumedFrame>;
export type ResumeFailure = z.infer<typeof ResumeFailure>;

/** Every `type` a client may send in v1. */
export const CLIENT_FRAME_TYPES: ReadonlySet<string> = new Set(
  ClientFrame.options.map((o) => o.shape.type.value),
);
