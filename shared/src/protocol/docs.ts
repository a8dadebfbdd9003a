import { z } from 'zod';
import { ERROR_CODES } from '../errors.js';
import { CLOSE_CODES, REFUSAL_CLOSE, REFUSAL_PARAM, REFUSAL_SUBPROTOCOL } from './close-codes.js';
import { PING_TEXT, PONG_TEXT } from './codec.js';
import { MAX_FRAME_DEPTH, MAX_FRAME_VALUES } from './frame-shape.js';
import {
  AckFrame,
  AuthFrame,
  AuthOkFrame,
  ErrorFrame,
  LegacyDirectMessage,
  MessageFrame,
  ResumedFrame,
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
  else rows.push('', 'Any other field is dropped: it never reaches the receiver.');
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
    `Open a WebSocket to \`/chat/{userId}\` through the router (a node serves the same path). Offer the`,
    `subprotocol \`${SUBPROTOCOL}\`. A client that offers none is a seed client and is spoken to in the seed's`,
    'shapes (see [Seed clients](#seed-clients)). The user id is 1-128 characters of `A-Z a-z 0-9 . _ @ -`,',
    'taken literally (no percent-decoding).',
    '',
    'A refused upgrade is an HTTP status with `Connection: close` and a JSON body `{"error": CODE}`. The router',
    'checks the path, the handshake rate, the origin and the token before it connects to any node; what a node',
    'refuses after that (it checks the token again) reaches the client through the router as the node sent it.',
    '',
    '| Upgrade answer | From | When |',
    '| --- | --- | --- |',
    '| `101` | | Connected. |',
    '| `401` `AUTH_ERR_*` | router | No token, or an invalid, expired or wrongly signed one (see [security.md](security.md)). |',
    '| `403` `AUTH_ERR_SUBJECT_MISMATCH` / `AUTH_ERR_ORIGIN_FORBIDDEN` | router | The token is for another user / the browser origin is not allowed. |',
    '| `400` `ROUTER_ERR_BAD_USER_ID` / `ROUTER_ERR_BAD_UPGRADE` / `ROUTER_ERR_BAD_AFFINITY` | router | The user id is empty, too long or has other characters / not a WebSocket upgrade / a bad `affinity` parameter. |',
    '| `404` `ROUTER_ERR_NOT_FOUND` | router | The path is not `/chat/{userId}`. |',
    '| `429` `ROUTER_ERR_RATE_LIMITED` + `Retry-After` | router | Too many handshakes from this address. |',
    '| `503` `ROUTER_ERR_NO_NODE` + `Retry-After` | router | No node is on the ring (the cluster is starting or every node is draining), or the router has just started and its view has not settled yet. |',
    '| `502` `ROUTER_ERR_UPSTREAM_REFUSED` / `ROUTER_ERR_UPSTREAM_FAILED`, `504` `ROUTER_ERR_UPSTREAM_TIMEOUT` | router | The node could not be reached, or did not answer the upgrade in time. Retry with backoff. |',
    '| `429` `NODE_ERR_TOO_MANY_CONNECTIONS` | node | Too many sessions for this user (`CHAT_NODE_MAX_CONNECTIONS_PER_USER`). |',
    '| `503` `NODE_ERR_NOT_READY` / `NODE_ERR_FULL` + `Retry-After` | node | The node is starting or draining / has `CHAT_NODE_MAX_CONNECTIONS` sessions (a node whose Kafka is down still accepts: local delivery works). |',
    '',
    "Connecting to a node directly (tests, a single node) gives the node's own codes: `400`/`404`",
    '`NODE_ERR_BAD_PATH` for a bad path, and the same `401`/`403` `AUTH_ERR_*` checks.',
    '',
    `**Refusals a browser can read: \`?${REFUSAL_PARAM}=${REFUSAL_CLOSE}\`.** A browser cannot see the status or body of a`,
    'refused upgrade: it gets close `1006` whether the token was bad or the router overloaded. Add',
    `\`${REFUSAL_PARAM}=${REFUSAL_CLOSE}\` to the query (\`/chat/alice?${REFUSAL_PARAM}=${REFUSAL_CLOSE}\`) and the router answers every refusal in`,
    'the table above (its own, and the ones it relays from the node) by completing the handshake (`101`, with',
    `\`${REFUSAL_SUBPROTOCOL}\` when offered, else \`${SUBPROTOCOL}\` when offered) and closing at once with code \`4000 + status\` (\`REFUSED_*\` in [Close codes](#close-codes))`,
    'and the reason `<ERROR_CODE>`, or `<ERROR_CODE> retry_after_ms=<N>` when the HTTP answer had',
    '`Retry-After` (N = its seconds × 1000): e.g. `4401` `AUTH_ERR_TOKEN_EXPIRED`, `4429`',
    '`ROUTER_ERR_RATE_LIMITED retry_after_ms=1000`, `4503` `NODE_ERR_NOT_READY retry_after_ms=1000`. The page sees',
    '`open` and then that `close`, so reconnect logic must look at the close code, not at whether `open` came;',
    `a client that also offers the subprotocol \`${REFUSAL_SUBPROTOCOL}\` (a node never selects it) knows at \`open\``,
    '(the selected subprotocol is that one) that a refusal follows, and does not take it for a connection.',
    'A node answer outside the contract (another status, no known code) becomes `4502`',
    '`ROUTER_ERR_UPSTREAM_FAILED`. A request that is not a valid WebSocket upgrade (no or a malformed',
    '`Sec-WebSocket-Key`, a version other than 13, `ROUTER_ERR_BAD_UPGRADE`) still gets the HTTP answer: there',
    'is no handshake to complete. Without the parameter nothing changes. The node ignores the parameter, and it',
    'can go with `since` and `affinity`. Connecting to a node directly, refusals are always HTTP.',
    '',
    'The token (a JWT whose `sub` is the user id) goes in `Authorization: Bearer <jwt>`, or, from a browser,',
    `as an extra subprotocol \`bearer.<jwt>\` next to \`${SUBPROTOCOL}\` (the server answers with \`${SUBPROTOCOL}\`).`,
    '',
    '**Resuming (durable mode).** In a cluster running `CHAT_NODE_DELIVERY_MODE=durable`, every `message` carries',
    'its position `pos` (`{shard, offset, epoch}`). Keep the last one received; when reconnecting, add',
    '`since=<shard>:<offset>:<epoch>` to the query (`/chat/{userId}?since=3:1841:k9f2c4e01ab7d`). The node that',
    'owns your shard first writes every message to you after that position, then answers `resumed` (below),',
    'then live messages follow, in log order, each id once. When it cannot fill the gap it says so: `resumed`',
    'with `recovered: false` and a reason (the position is older than what it keeps, from another log, of another',
    'shard, or the cluster runs in fast mode); then fetch history elsewhere if you need it. A node that is taking',
    'your shard over (its owner died) makes you wait for it, at most `CHAT_NODE_RECOVERY_WAIT_MS`; nothing is',
    'written to the connection before `resumed`. Without `since` a connection gets live messages only.',
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
    '`PROTO_ERR_FORBIDDEN_SENDER` and nothing is delivered. A `cid`, if present, is echoed in the ack (and',
    'delivered with the message); the same frame again within the window is a retry (below). Only `sender_id`,',
    '`receiver_id`, `text`, `body` and `cid` are delivered: a field the sender added (`"from":"admin"`) is dropped.',
    '',
    `**Frame shape.** A client frame may hold at most ${MAX_FRAME_VALUES} values (object members and array elements) and`,
    `nest at most ${MAX_FRAME_DEPTH} levels; a frame with more is refused with \`PROTO_ERR_TOO_COMPLEX\` before it is`,
    'parsed (no valid frame comes close).',
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
      pos: { shard: 3, offset: 1841, epoch: 'k9f2c4e01ab7d' },
    }),
    'A seed direct message is delivered to a v1 receiver in the seed shape: its known fields only, with',
    '`sender_id` the sender’s authenticated user.',
    '',
    ...section('`ack`', AckFrame, { type: 'ack', cid: 'c-17', id: 'n1-3fa2c1d0-1k', status: 'accepted' }),
    'Every send gets exactly one answer: an `ack` or an `error` with the same `cid`. Acks of different sends',
    'may arrive in a different order than the sends (a local delivery is acked before an earlier send that',
    'waits for Kafka); messages to one receiver arrive in send order.',
    '',
    '**Retries.** A send that got no answer (the connection dropped) or a retryable error can be sent again,',
    'on the same connection or after reconnecting to any node. The same `cid`, `to` and `body` within',
    '`CHAT_NODE_SEND_DEDUP_WINDOW_MS` (5 minutes) make it a retry: on the node that answered the first, it gets',
    'that answer again (the same `ack`, the same `id`) and nothing is delivered again; while the first is still',
    'in flight, it gets the same answer when it comes. After `NODE_ERR_BUS_UNAVAILABLE` (not sent), after',
    '`NODE_ERR_BUS_TIMEOUT` (may have arrived), and on another node, it is sent again under the same `id`',
    '(derived from sender, `cid`, `to` and `body`), so a receiver that has it already does not get it twice;',
    'clients drop a repeated `id` anyway. Make `cid`s unique per sender (a UUID): a client that numbers them per',
    'connection and sends the same text to the same user again within the window has it taken for a retry.',
    '',
    ...section('`error`', ErrorFrame, {
      type: 'error',
      code: 'NODE_ERR_BUS_UNAVAILABLE',
      retryable: true,
      message: 'the bus is unavailable',
      cid: 'c-18',
    }),
    ...section('`auth_ok`', AuthOkFrame, { type: 'auth_ok', cid: 'a-1', exp: 1795779999 }),
    ...section('`resumed`', ResumedFrame, { type: 'resumed', recovered: true, replayed: 12 }),
    '**Rate limits.** Every frame is charged, before it is decoded, by count and by size, against its',
    'connection (`CHAT_NODE_RATE_PER_SEC` frames and `CHAT_NODE_RATE_BYTES_PER_SEC` bytes per second) and',
    'against its user across all their connections on the node (`CHAT_NODE_USER_RATE_CONNECTIONS` times the',
    'per-connection limits), each with a burst. A frame over any of them is dropped undecoded; the',
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
    'A client can also see `1006` (abnormal closure, no close frame): the connection dropped without a close',
    'handshake, because its node crashed or was killed, a node stopping gracefully ran out of its grace period',
    '(`CHAT_NODE_SHUTDOWN_GRACE_MS`), the server terminated a silent peer, or the network failed. Reconnect',
    'through the router with jittered backoff. A browser also sees `1006` for every refused upgrade (below),',
    `unless it asked for the \`REFUSED_*\` closes with \`?${REFUSAL_PARAM}=${REFUSAL_CLOSE}\` ([Connecting](#connecting)).`,
    '',
    '## Seed clients',
    '',
    `A client that does not offer \`${SUBPROTOCOL}\` is a seed client, written for the design this project`,
    'replaces. It keeps working unchanged, apart from authentication:',
    '',
    `- it sends \`${PING_TEXT}\` and gets \`${PONG_TEXT}\`; a blank (whitespace-only) frame is ignored, as the seed did;`,
    '- it sends `{"sender_id", "receiver_id", ...}` (`sender_id` must be its own user id) and gets an `ack`',
    '  only when the frame carries a string `cid` (the seed sent none); error frames still answer what went',
    '  wrong (a malformed frame, impersonation, the rate limit, the bus unavailable, the node shutting down);',
    '- it receives seed messages with their known fields (`sender_id`, `receiver_id`, `text`, `body`, `cid`;',
    '  others are dropped), and messages from v1 senders in the seed shape:',
    '  `{"sender_id": from, "receiver_id": to, "body", "id", "ts"}`.',
    '',
    'Migrating a seed client: give it a token. If it cannot set the `Authorization` header, the deployment can',
    'allow the token in the query string (`CHAT_AUTH_QUERY_TOKEN=true` at the router and the nodes, then',
    '`/chat/{userId}?access_token=<jwt>`; query strings end up in access logs, so prefer the header or the',
    '`bearer.<jwt>` subprotocol). To move to v1, offer `chat.v1` and send `send` frames: every send is then',
    'answered, and messages arrive as `message` frames.',
    '',
    '## Browsers: why was my connection refused?',
    '',
    'A browser cannot see the HTTP status or body of a refused upgrade: the page sees only a `close` event with',
    `code \`1006\`. Connect with \`?${REFUSAL_PARAM}=${REFUSAL_CLOSE}\` and the page gets the reason as a close code`,
    '(`4401` `AUTH_ERR_INVALID_TOKEN`, `4403` `AUTH_ERR_ORIGIN_FORBIDDEN`, ...; see [Connecting](#connecting)).',
    'Without it, or to dig further, look at the server side:',
    '',
    '- the router logs each origin and token refusal as `handshake refused` with its `code` (at most one line',
    '  per code per interval, with a count of those suppressed), and counts every refusal in',
    '  `chat_router_upgrades_total{result}` (token and origin ones also in `chat_router_auth_failures_total{code}`,',
    '  [metrics.md](metrics.md));',
    "- the usual causes: the page's origin is not in `CHAT_AUTH_ALLOWED_ORIGINS` (`AUTH_ERR_ORIGIN_FORBIDDEN`),",
    '  or the token is missing (a browser cannot set headers: pass it as the subprotocol `bearer.<jwt>` next to',
    `  \`${SUBPROTOCOL}\`), expired, or for another user;`,
    '- from a terminal, the same URL with the same token and `Origin` header shows the status and code, e.g.',
    '  `npx wscat -c ws://HOST/chat/alice -s chat.v1 -H "Authorization: Bearer $TOKEN" -o https://your.page`.',
    '',
  ].join('\n');
}
