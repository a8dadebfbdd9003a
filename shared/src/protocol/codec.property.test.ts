// Property-based tests of the one codec (fast-check): it never throws, and every class of input gets
// its exact outcome.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { decodeClientFrame } from './codec.js';
import { frameTooComplex, MAX_FRAME_DEPTH, MAX_FRAME_VALUES } from './frame-shape.js';
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
        const text = JSON.stringify(value);
        const expected = shape(value).tooComplex ? 'PROTO_ERR_TOO_COMPLEX' : 'PROTO_ERR_INVALID_FRAME';
        assert.equal(outcome(text), expected);
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
        fc.pre(!shape({ ...rest, type }).tooComplex);
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

test('seed frames: own sender decodes to its known fields only; another sender is PROTO_ERR_FORBIDDEN_SENDER', () => {
  const known = new Set(['type', 'text', 'body', 'cid']);
  fc.assert(
    fc.property(
      userId,
      fc.string(),
      fc.string({ maxLength: 200 }),
      fc.dictionary(fc.stringMatching(/^[a-z]{1,8}$/), fc.jsonValue({ maxDepth: 3 }), { maxKeys: 6 }),
      (to, sender, text, extra) => {
        for (const key of known) delete extra[key];
        const own = { ...extra, from: 'admin', sender_id: 'alice', receiver_id: to, text };
        fc.pre(!shape(own).tooComplex);
        const r = decodeClientFrame(JSON.stringify(own), ctx);
        assert.equal(r.kind, 'legacy');
        assert.deepEqual(r.kind === 'legacy' && r.frame, { sender_id: 'alice', receiver_id: to, text });
        fc.pre(sender !== 'alice');
        assert.equal(outcome(JSON.stringify({ ...own, sender_id: sender })), 'PROTO_ERR_FORBIDDEN_SENDER');
      },
    ),
  );
});

test('deep nesting is refused without exhausting the stack; huge numbers are just wrong types', () => {
  const deep = (n: number) => `${'['.repeat(n)}${']'.repeat(n)}`;
  // The frame's own object is the first level.
  assert.equal(
    outcome(`{"sender_id":"alice","receiver_id":"bob","x":${deep(MAX_FRAME_DEPTH)}}`),
    'PROTO_ERR_TOO_COMPLEX',
  );
  assert.equal(
    outcome(`{"sender_id":"alice","receiver_id":"bob","x":${deep(MAX_FRAME_DEPTH - 1)}}`),
    'legacy',
  );
  assert.equal(
    outcome(`{"sender_id":"alice","receiver_id":"bob","x":${deep(50_000)}}`),
    'PROTO_ERR_TOO_COMPLEX',
  );
  assert.equal(outcome('{"type":"send","cid":"1","to":"bob","body":1e400}'), 'PROTO_ERR_INVALID_FRAME');
  assert.equal(
    outcome('{"type":"send","cid":"1","to":"bob","body":"x","n":123456789012345678901234567890}'),
    'PROTO_ERR_INVALID_FRAME',
  );
});

/** The reference: the values (members and elements) and depth of a parsed value, counted the slow way. */
function shape(value: unknown): { values: number; depth: number; tooComplex: boolean } {
  let values = 0;
  let depth = 0;
  const walk = (v: unknown, level: number): void => {
    if (typeof v !== 'object' || v === null) return;
    depth = Math.max(depth, level);
    const children = Object.values(v);
    values += Math.max(1, children.length); // `{`, then one per separator: at least one per container.
    for (const child of children) walk(child, level + 1);
  };
  walk(value, 1);
  return { values, depth, tooComplex: values > MAX_FRAME_VALUES || depth > MAX_FRAME_DEPTH };
}

test('the shape bound agrees with counting the parsed value, whatever the strings hold', () => {
  fc.assert(
    fc.property(fc.jsonValue({ maxDepth: 12 }), (value) => {
      const text = JSON.stringify(value);
      assert.equal(frameTooComplex(text) !== undefined, shape(value).tooComplex, text);
    }),
    { numRuns: 2000 },
  );
  // Strings with quotes, backslashes, commas and brackets do not count.
  const tricky = JSON.stringify({ a: '\\",,,[[[{{{', b: '\\', c: '\\\\"' + ','.repeat(500) });
  assert.equal(frameTooComplex(tricky), undefined);
});

test('many values are refused before parsing, whatever the size', () => {
  const keys = Object.fromEntries(Array.from({ length: MAX_FRAME_VALUES }, (_, i) => [`k${i}`, i]));
  assert.equal(
    outcome(JSON.stringify({ sender_id: 'alice', receiver_id: 'bob', ...keys })),
    'PROTO_ERR_TOO_COMPLEX',
  );
  const numbers = Array.from({ length: MAX_FRAME_VALUES + 1 }, () => 1);
  assert.equal(
    outcome(JSON.stringify({ type: 'send', cid: 'c', to: 'bob', body: numbers })),
    'PROTO_ERR_TOO_COMPLEX',
  );
  // A 60 KB body is one value.
  const big = JSON.stringify({ type: 'send', cid: 'c', to: 'bob', body: 'x,['.repeat(5000) });
  assert.equal(outcome(big), 'send');
});
