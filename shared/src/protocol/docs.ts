import { z } from 'zod';
import { ERROR_CODES } from '../errors.js';
import { CLOSE_CODES } from './close-codes.js';
import { PING_TEXT, PONG_TEXT } from './codec.js';
import {
  AckFrame,
  AuthFrame,
  AuthOkFrame,
  ErrorFrame,
  LegacyDirectMessage,
  MessageFrame,
  SendFrame,
  SUBPROTOCOL,
} from './schemas.js';

interface JsonSchemaProp {
  type?: string;
  const?: unknown;
  enum?: unknown[];
  description?: string;
  minLength?: number;
  maxLength?: number;
  pattern?: string;
}

function fieldTable(schema: z.ZodType): string[] {
  const json = z.toJSONSchema(schema) as {
    properties: Record<string, JsonSchemaProp>;
    required?: string[];
    additionalProperties?: unknown;
  };
  const required = new Set(json.required ?? []);
  const rows = ['| Field | Type | Required | Meaning |', '| --- | --- | --- | --- |'];
  for (const [name, prop] of Object.entries(json.properties)) {
    let type = prop.type ?? 'any';
    if (prop.const !== undefined) type = `\`${JSON.stringify(prop.const)}\``;
    else if (prop.enum) type = prop.enum.map((v) => `\`${JSON.stringify(v)}\``).join(' \\| ');
    else if (prop.maxLength !== undefined) type = `${type} (${prop.minLength ?? 0}-${prop.maxLength} chars)`;
    rows.push(`| \`${name}\` | ${type} | ${required.has(name) ? 'yes' : 'no'} | ${prop.description ?? ''} |`);
  }
  if (json.additionalProperties === false)
    rows.push('', 'Any other field is refused (`PROTO_ERR_INVALID_FRAME`).');
  else rows.push('', 'Any other field is kept and reaches the receiver unchanged.');
  return rows;
}

function section(title: string, schema: z.ZodType, example: unknown): string[] {
  schema.parse(example); // A wrong example fails generation and the docs test.
  const meta = z.toJSONSchema(schema) as { description?: string };
  return [
    `### ${title}`,
    '',
    meta.description ?? '',
    '',
    ...fieldTable(schema),
    '',
    '```json',
    JSON.stringify(example),
    '```',
    '',
  ];
}

/** Renders docs/protocol.md from the schemas, close codes and error codes; a test checks it is current. */
export function renderProtocolDocs(): string {
  return [
    '# Protocol v1',
    '',
    '<!-- Generated from shared/src/protocol/ by `pnpm docs:gen`; do not edit by hand. -->',
    '',
    '## Connecting',
    '',
    `Open a WebSocket to \`/chat/{userId}\` (through the router; a node serves the same path). Offer the`,
    `subprotocol \`${SUBPROTOCOL}\`; clients that offer none (seed clients) get the same frames. The user id`,
    'is 1-128 characters of `A-Z a-z 0-9 . _ @ -`, taken literally (no percent-decoding).',
    '',
    '| Upgrade answer | When |',
    '| --- | --- |',
    '| `101` | Connected. |',
    '| `401` `AUTH_ERR_*` | No token, or an invalid, expired or wrongly signed one (see [security.md](security.md)). |',
    '| `403` `AUTH_ERR_SUBJECT_MISMATCH` / `AUTH_ERR_ORIGIN_FORBIDDEN` | The token is for another user / the browser origin is not allowed. |',
    '| `429` `NODE_ERR_TOO_MANY_CONNECTIONS` / `ROUTER_ERR_RATE_LIMITED` | Too many sessions for this user / handshakes from this address. |',
    '| `400` `NODE_ERR_BAD_PATH` | The user id is empty, too long or has other characters. |',
    '| `404` `NODE_ERR_BAD_PATH` | The path is not `/chat/{userId}`. |',
    '| `503` `NODE_ERR_NOT_READY` + `Retry-After` | The node is starting or draining (a node whose Kafka is down still accepts: local delivery works). |',
    '',
    'The token (a JWT whose `sub` is the user id) goes in `Authorization: Bearer <jwt>`, or, from a browser,',
    `as an extra subprotocol \`bearer.<jwt>\` next to \`${SUBPROTOCOL}\` (the server answers with \`${SUBPROTOCOL}\`).`,
    '',
    'All frames are JSON text frames, except the seed keep-alive. Binary frames get an error frame',
    '(`PROTO_ERR_BINARY_UNSUPPORTED`). The server pings every `CHAT_NODE_PING_INTERVAL_MS`; a client silent',
    'for `CHAT_NODE_IDLE_TIMEOUT_MS` (not even a pong) is terminated.',
    '',
    '## Client to server',
    '',
    `### \`${PING_TEXT}\` (text)`,
    '',
    `The seed keep-alive: the text frame \`${PING_TEXT}\` is answered with the text frame \`${PONG_TEXT}\`.`,
    '',
    ...section('`send`', SendFrame, { type: 'send', cid: 'c-17', to: 'bob', body: 'hello' }),
    ...section('Seed direct message (no `type`)', LegacyDirectMessage, {
      sender_id: 'alice',
      receiver_id: 'bob',
      text: 'hello',
    }),
    ...section('`auth`', AuthFrame, { type: 'auth', cid: 'a-1', token: 'eyJhbGciOiJIUzI1NiJ9.e30.c2ln' }),
    'A session whose token expires without a refresh is closed with 4003.',
    '',
    'The sender is always the connection’s user: a `sender_id` naming anyone else is refused with',
    '`PROTO_ERR_FORBIDDEN_SENDER` and nothing is delivered. A string `cid` field, if present, is echoed in the',
    'ack (and, like every extra field, delivered).',
    '',
    '## Server to client',
    '',
    ...section('`message`', MessageFrame, {
      type: 'message',
      id: 'n1-3fa2c1d0-1k',
      from: 'alice',
      to: 'bob',
      body: 'hello',
      ts: 1795779567238,
    }),
    'A seed direct message is delivered to its receiver as the sender wrote it (with `sender_id` verified).',
    '',
    ...section('`ack`', AckFrame, { type: 'ack', cid: 'c-17', id: 'n1-3fa2c1d0-1k', status: 'accepted' }),
    'Every send gets exactly one answer: an `ack` or an `error` with the same `cid`. Acks of different sends',
    'may arrive in a different order than the sends (a local delivery is acked before an earlier send that',
    'waits for Kafka); messages to one receiver arrive in send order.',
    '',
    ...section('`error`', ErrorFrame, {
      type: 'error',
      code: 'NODE_ERR_BUS_UNAVAILABLE',
      retryable: true,
      message: 'the bus is unavailable',
      cid: 'c-18',
    }),
    ...section('`auth_ok`', AuthOkFrame, { type: 'auth_ok', cid: 'a-1', exp: 1795779999 }),
    'A frame over the connection’s rate (`CHAT_NODE_RATE_PER_SEC`, burst `CHAT_NODE_RATE_BURST`) is dropped; the',
    'first of a run is answered with `NODE_ERR_RATE_LIMITED`, and `CHAT_NODE_RATE_CLOSE_AFTER` in a row close',
    'the connection with 4008.',
    '',
    '### Error codes in error frames',
    '',
    '| Code | Retryable | Meaning |',
    '| --- | --- | --- |',
    ...Object.entries(ERROR_CODES)
      .filter(([code]) => ['PROTO_', 'NODE_', 'AUTH_'].some((p) => code.startsWith(p)))
      .map(([code, spec]) => `| \`${code}\` | ${spec.retryable ? 'yes' : 'no'} | ${spec.summary} |`),
    '',
    '## Close codes',
    '',
    'Closes initiated by the server. Where the reason carries `retry_after_ms=N`, wait about that long before',
    'reconnecting (the server already spreads closes over time; this spreads the reconnects too).',
    '',
    '| Code | Name | Reconnect | Meaning |',
    '| --- | --- | --- | --- |',
    ...Object.entries(CLOSE_CODES).map(
      ([name, c]) => `| ${c.code} | \`${name}\` | ${c.reconnect ? 'yes' : 'no'} | ${c.summary} |`,
    ),
    '',
  ].join('\n');
}
