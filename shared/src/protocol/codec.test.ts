import assert from 'node:assert/strict';
import { test } from 'node:test';
import { BusMessage } from '../cluster/records.js';
import { decodeClientFrame, encodeServerFrame, errorFrame, PING_TEXT } from './codec.js';

const ctx = { userId: 'alice' };
const codeOf = (text: string) => {
  const r = decodeClientFrame(text, ctx);
  return r.kind === 'invalid' ? r.error.code : r.kind;
};

test('text ping is a seed keep-alive', () => {
  assert.deepEqual(decodeClientFrame(PING_TEXT, ctx), { kind: 'ping' });
});

test('a seed direct message keeps only its known fields: an added "from" never reaches anyone', () => {
  const r = decodeClientFrame(
    '{"sender_id":"alice","receiver_id":"bob","text":"hi","cid":"k1","from":"admin","id":"x","n":[1,2]}',
    ctx,
  );
  assert.equal(r.kind, 'legacy');
  assert.deepEqual(r.kind === 'legacy' && r.frame, {
    sender_id: 'alice',
    receiver_id: 'bob',
    text: 'hi',
    cid: 'k1',
  });
  const v1Shape = decodeClientFrame('{"sender_id":"alice","receiver_id":"bob","body":"hi"}', ctx);
  assert.deepEqual(v1Shape.kind === 'legacy' && v1Shape.frame, {
    sender_id: 'alice',
    receiver_id: 'bob',
    body: 'hi',
  });
});

test('a v1 send decodes', () => {
  const r = decodeClientFrame('{"type":"send","cid":"c1","to":"bob","body":"hi"}', ctx);
  assert.deepEqual(r, { kind: 'send', frame: { type: 'send', cid: 'c1', to: 'bob', body: 'hi' } });
});

test('impersonation in a seed frame is refused', () => {
  assert.equal(codeOf('{"sender_id":"mallory","receiver_id":"bob"}'), 'PROTO_ERR_FORBIDDEN_SENDER');
});

test('bad frames get stable codes and never throw', () => {
  const cases: [string, string][] = [
    ['', 'PROTO_ERR_MALFORMED'],
    ['pong', 'PROTO_ERR_MALFORMED'],
    ['{"sender_id":', 'PROTO_ERR_MALFORMED'],
    ['[1,2]', 'PROTO_ERR_INVALID_FRAME'],
    ['null', 'PROTO_ERR_INVALID_FRAME'],
    ['42', 'PROTO_ERR_INVALID_FRAME'],
    ['{"receiver_id":"bob"}', 'PROTO_ERR_INVALID_FRAME'],
    ['{"sender_id":"alice","receiver_id":""}', 'PROTO_ERR_INVALID_FRAME'],
    ['{"sender_id":"alice","receiver_id":"../etc"}', 'PROTO_ERR_INVALID_FRAME'],
    ['{"sender_id":"alice","receiver_id":7}', 'PROTO_ERR_INVALID_FRAME'],
    ['{"type":"nope"}', 'PROTO_ERR_UNKNOWN_TYPE'],
    ['{"type":7}', 'PROTO_ERR_UNKNOWN_TYPE'],
    ['{"type":"send","cid":"c","to":"bob"}', 'PROTO_ERR_INVALID_FRAME'],
    ['{"type":"send","cid":"c","to":"bob","body":"x","extra":1}', 'PROTO_ERR_INVALID_FRAME'],
    ['{"type":"send","cid":"","to":"bob","body":"x"}', 'PROTO_ERR_INVALID_FRAME'],
    ['{"sender_id":"alice","receiver_id":"bob","text":7}', 'PROTO_ERR_INVALID_FRAME'],
    [`{"sender_id":"alice","receiver_id":"bob","text":"${'x'.repeat(16_385)}"}`, 'PROTO_ERR_INVALID_FRAME'],
    ['{"sender_id":"alice","receiver_id":"bob","cid":""}', 'PROTO_ERR_INVALID_FRAME'],
  ];
  for (const [text, code] of cases) assert.equal(codeOf(text), code, text);
});

test('errors carry the client message id when the frame had one', () => {
  const r = decodeClientFrame('{"type":"send","cid":"c9","to":"bob"}', ctx);
  assert.equal(r.kind === 'invalid' && r.error.cid, 'c9');
  const seed = decodeClientFrame('{"sender_id":"alice","receiver_id":"bob","text":1,"cid":"k9"}', ctx);
  assert.equal(seed.kind === 'invalid' && seed.error.cid, 'k9');
  const forged = decodeClientFrame('{"sender_id":"bob","receiver_id":"carol","cid":"k8"}', ctx);
  assert.equal(forged.kind === 'invalid' && forged.error.cid, 'k8');
});

test('a bus record from an older node loses the extra fields of its seed frame too', () => {
  const record = BusMessage.parse({
    v: 1,
    id: 'n1-1',
    origin: 'n1',
    from: 'alice',
    to: 'bob',
    ts: 1,
    frame: { sender_id: 'alice', receiver_id: 'bob', text: 'hi', from: 'admin' },
  });
  assert.deepEqual(record.frame, { sender_id: 'alice', receiver_id: 'bob', text: 'hi' });
});

test('error frames carry the documented retryability', () => {
  assert.deepEqual(JSON.parse(encodeServerFrame(errorFrame('KAFKA_ERR_UNAVAILABLE', 'down', 'c1'))), {
    type: 'error',
    code: 'KAFKA_ERR_UNAVAILABLE',
    retryable: true,
    message: 'down',
    cid: 'c1',
  });
  assert.equal(errorFrame('PROTO_ERR_MALFORMED', 'x').retryable, false);
});
