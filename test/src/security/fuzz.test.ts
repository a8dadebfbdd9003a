// A fuzz run against a live router and node: generated hostile frames from an authenticated attacker, each
// answered with its exact code, while a well-behaved pair keeps chatting and loses nothing.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { frameTooComplex, mintToken } from '@chat/shared';
import { startNode } from '../harness/node-process.js';
import { startRouter } from '../harness/router-process.js';
import { TestClient, isMessage } from '../harness/ws-client.js';
import { pollUntil } from '../poll.js';

const SECRET = 'fuzz-test-secret-0123456789abcdefghij';

/** A hostile frame and the exact answer it must get. */
interface Case {
  readonly frame: string | Buffer;
  readonly binary?: boolean;
  readonly expect: string;
}

const notJson = fc.string({ minLength: 1, maxLength: 200 }).filter((s) => {
  if (s === 'ping') return false;
  try {
    JSON.parse(s);
    return false;
  } catch {
    return true;
  }
});
const wrongType = fc.oneof(
  fc.integer(),
  fc.boolean(),
  fc.constant(null),
  fc.array(fc.integer(), { maxLength: 3 }),
  fc.double(),
);

/** A frame with more values or levels than any valid one is refused before it is parsed. */
const orTooComplex = (frame: string, expect: string): Case => ({
  frame,
  expect: frameTooComplex(frame) === undefined ? expect : 'PROTO_ERR_TOO_COMPLEX',
});

const cases: fc.Arbitrary<Case> = fc.oneof(
  notJson.map((frame) => ({ frame, expect: 'PROTO_ERR_MALFORMED' })),
  fc
    .oneof(
      fc.array(fc.jsonValue({ maxDepth: 3 }), { maxLength: 5 }),
      fc.integer(),
      fc.string(),
      fc.constant(null),
    )
    .map((v) => orTooComplex(JSON.stringify(v), 'PROTO_ERR_INVALID_FRAME')),
  fc
    .tuple(
      fc.string({ maxLength: 20 }).filter((t) => t !== 'send' && t !== 'auth'),
      fc.dictionary(fc.string({ maxLength: 8 }), fc.jsonValue({ maxDepth: 2 }), { maxKeys: 4 }),
    )
    .map(([type, rest]) => orTooComplex(JSON.stringify({ ...rest, type }), 'PROTO_ERR_UNKNOWN_TYPE')),
  fc.tuple(fc.constantFrom('to', 'body', 'cid'), wrongType).map(([field, value]) => ({
    frame: JSON.stringify({ type: 'send', cid: 'x', to: 'bob', body: 'b', [field]: value }),
    expect: 'PROTO_ERR_INVALID_FRAME',
  })),
  fc
    .string({ minLength: 1, maxLength: 40 })
    .filter((s) => s !== 'mallory')
    .map((sender) => ({
      frame: JSON.stringify({ sender_id: sender, receiver_id: 'alice', text: 'forged' }),
      expect: 'PROTO_ERR_FORBIDDEN_SENDER',
    })),
  fc.uint8Array({ minLength: 1, maxLength: 64 }).map((bytes) => ({
    frame: Buffer.from(bytes),
    binary: true,
    expect: 'PROTO_ERR_BINARY_UNSUPPORTED',
  })),
  fc.stringMatching(/^[a-z]{1,10}$/).map((who) => ({
    frame: JSON.stringify({ type: 'send', cid: 'o', to: `ghost-${who}`, body: 'boo' }),
    expect: 'offline',
  })),
  fc.integer({ min: 8, max: 2000 }).map((depth) => ({
    frame: `{"sender_id":"mallory","receiver_id":"alice","x":${'['.repeat(depth)}${']'.repeat(depth)}}`,
    expect: 'PROTO_ERR_TOO_COMPLEX',
  })),
  fc.integer({ min: 64, max: 5000 }).map((keys) => ({
    frame: JSON.stringify(
      Object.fromEntries([['sender_id', 'mallory'], ...Array.from({ length: keys }, (_, i) => [`k${i}`, i])]),
    ),
    expect: 'PROTO_ERR_TOO_COMPLEX',
  })),
);

test('fuzz: hostile frames get their exact codes; a well-behaved pair loses nothing meanwhile', async (t) => {
  const auth = { CHAT_AUTH_MODE: 'jwt', CHAT_AUTH_HS256_SECRET: SECRET };
  const node = await startNode(t, {
    nodeId: 'fuzz',
    env: {
      ...auth,
      CHAT_NODE_RATE_PER_SEC: '100000',
      CHAT_NODE_RATE_BURST: '100000',
      CHAT_NODE_RATE_BYTES_PER_SEC: '1000000000',
      CHAT_NODE_RATE_BYTES_BURST: '1000000000',
    },
  });
  const router = await startRouter(t, { ...auth, CHAT_ROUTER_NODES: `fuzz=http://127.0.0.1:${node.port}` });
  await pollUntil(async () => (await router.members()).ringSize === 1, { what: 'node in the ring' });
  const connect = async (user: string) =>
    TestClient.connect(t, router.wsUrl(user), [
      'chat.v1',
      `bearer.${await mintToken({ secret: SECRET, sub: user })}`,
    ]);
  const alice = await connect('alice');
  const bob = await connect('bob');
  const mallory = await connect('mallory');

  // The well-behaved pair chats all along.
  let sent = 0;
  let chatting = true;
  const chat = (async () => {
    while (chatting) {
      const cid = `good-${sent}`;
      alice.send({ type: 'send', cid, to: 'bob', body: cid });
      sent++;
      await alice.reply(cid);
    }
  })();

  const samples = fc.sample(cases, { numRuns: 600, seed: 20261127 });
  const seen = new Map<string, number>();
  for (const [i, c] of samples.entries()) {
    const before = mallory.frames.length;
    if (c.binary) mallory.ws.send(c.frame, { binary: true });
    else mallory.ws.send(c.frame);
    const answer = (await mallory.next(() => true, 10_000, before)) as Record<string, unknown>;
    const got = answer.type === 'ack' ? String(answer.status) : String(answer.code);
    assert.equal(got, c.expect, `case ${i}: ${String(c.frame).slice(0, 120)}`);
    seen.set(c.expect, (seen.get(c.expect) ?? 0) + 1);
    await pollUntil(() => mallory.frames.length === before + 1, { what: 'exactly one answer' });
  }
  chatting = false;
  await chat;

  assert.equal(seen.size, 7, `every class was tried: ${JSON.stringify([...seen])}`);
  t.diagnostic(
    `fuzz cases by expected answer: ${JSON.stringify(Object.fromEntries(seen))}; good messages: ${sent}`,
  );
  const got = await bob.waitCount(isMessage, sent);
  assert.deepEqual(
    got.map((f) => (f as Record<string, unknown>).body),
    Array.from({ length: sent }, (_, i) => `good-${i}`),
  );
  assert.equal(mallory.ws.readyState, mallory.ws.OPEN, 'bad frames cost an error, not the connection');
  assert.ok(alice.frames.every((f) => typeof f === 'object' && f.type === 'ack' && f.status === 'delivered'));
  assert.equal(node.child.exitCode, null);
  assert.equal(router.child.exitCode, null);
});
