// Property-based tests of the one codec (fast-check): it never throws, and every class of input gets
// its exact outcome.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { decodeClientFrame, MAX_DEPTH } from './codec.js';
import { CLIENT_FRAME_TYPES } from './schemas.js';

const ctx = { userId: 'alice' };
const userId = fc.stringMatching(/^[A-Za-z0-9._@-]{1,128}$/);
const outcome = (text: string) => {
  const r = decodeClientFrame(text, ctx);
  return r.kind === 'invalid' ? r.error.code : r.kind;
};

test('never throws, whatever the text', () => {
  fc.assert(
    fc.property(
      fc.oneof(
        fc.string(),
        fc.string({ unit: 'binary' }),
        fc.json(),
        fc.jsonValue().map((v) => JSON.stringify(v)),
      ),
      (text) => {
        decodeClientFrame(text, ctx);
      },
    ),
    { numRuns: 2000 },
  );
});

test('valid send frames decode to exactly what was sent', () => {
  fc.assert(
    fc.property(
      fc.string({ minLength: 1, maxLength: 64 }),
      userId,
      fc.string({ maxLength: 500 }),
      (cid, to, body) => {
        const frame = { type: 'send', cid, to, body };
        assert.deepEqual(decodeClientFrame(JSON.stringify(frame), ctx), { kind: 'send', frame });
      },
    ),
  );
});

test('text that is not JSON (and not ping) is PROTO_ERR_MALFORMED', () => {
  fc.assert(
    fc.property(fc.string(), (text) => {
      fc.pre(text !== 'ping');
      let json = true;
      try {
        JSON.parse(text);
      } catch {
        json = false;
      }
      fc.pre(!json);
      assert.equal(outcome(text), 'PROTO_ERR_MALFORMED');
    }),
  );
});

test('JSON that is not an object is PROTO_ERR_INVALID_FRAME', () => {
  fc.assert(
    fc.property(
      fc.oneof(
        fc.array(fc.jsonValue()),
        fc.double({ noNaN: true, noDefaultInfinity: true }),
        fc.string(),
        fc.boolean(),
        fc.constant(null),
      ),
      (value) => {
        assert.equal(outcome(JSON.stringify(value)), 'PROTO_ERR_INVALID_FRAME');
      },
    ),
  );
});

test('an unknown type is PROTO_ERR_UNKNOWN_TYPE', () => {
  fc.assert(
    fc.property(
      fc.oneof(fc.string(), fc.integer(), fc.constant(null)),
      fc.dictionary(fc.string(), fc.jsonValue()),
      (type, rest) => {
        fc.pre(typeof type !== 'string' || !CLIENT_FRAME_TYPES.has(type));
        assert.equal(outcome(JSON.stringify({ ...rest, type })), 'PROTO_ERR_UNKNOWN_TYPE');
      },
    ),
  );
});

test('a send with a wrongly typed field is PROTO_ERR_INVALID_FRAME and keeps its cid', () => {
  const wrong = fc.oneof(fc.integer(), fc.boolean(), fc.constant(null), fc.array(fc.integer()), fc.double());
  fc.assert(
    fc.property(fc.constantFrom('to', 'body'), wrong, (field, value) => {
      const frame: Record<string, unknown> = {
        type: 'send',
        cid: 'c1',
        to: 'bob',
        body: 'x',
        [field]: value,
      };
      const r = decodeClientFrame(JSON.stringify(frame), ctx);
      assert.equal(r.kind === 'invalid' && r.error.code, 'PROTO_ERR_INVALID_FRAME');
      assert.equal(r.kind === 'invalid' && r.error.cid, 'c1');
    }),
  );
});

test('seed frames: own sender decodes with every extra field; another sender is PROTO_ERR_FORBIDDEN_SENDER', () => {
  fc.assert(
    fc.property(
      userId,
      fc.string(),
      fc.dictionary(fc.stringMatching(/^[a-z]{1,8}$/), fc.jsonValue({ maxDepth: 4 })),
      (to, sender, extra) => {
        const own = { ...extra, sender_id: 'alice', receiver_id: to };
        delete (own as Record<string, unknown>).type;
        const r = decodeClientFrame(JSON.stringify(own), ctx);
        assert.equal(r.kind, 'legacy');
        assert.deepEqual(r.kind === 'legacy' && r.frame, JSON.parse(JSON.stringify(own)));
        fc.pre(sender !== 'alice');
        assert.equal(outcome(JSON.stringify({ ...own, sender_id: sender })), 'PROTO_ERR_FORBIDDEN_SENDER');
      },
    ),
  );
});

test('deep nesting is refused without exhausting the stack; huge numbers are just wrong types', () => {
  const deep = (n: number) => `${'['.repeat(n)}${']'.repeat(n)}`;
  assert.equal(
    outcome(`{"sender_id":"alice","receiver_id":"bob","x":${deep(MAX_DEPTH + 1)}}`),
    'PROTO_ERR_INVALID_FRAME',
  );
  assert.equal(outcome(`{"sender_id":"alice","receiver_id":"bob","x":${deep(MAX_DEPTH - 2)}}`), 'legacy');
  assert.equal(
    outcome(`{"sender_id":"alice","receiver_id":"bob","x":${deep(50_000)}}`),
    'PROTO_ERR_INVALID_FRAME',
  );
  assert.equal(outcome('{"type":"send","cid":"1","to":"bob","body":1e400}'), 'PROTO_ERR_INVALID_FRAME');
  assert.equal(
    outcome('{"type":"send","cid":"1","to":"bob","body":"x","n":123456789012345678901234567890}'),
    'PROTO_ERR_INVALID_FRAME',
  );
});
