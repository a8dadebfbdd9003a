import assert from 'node:assert/strict';
import { describe, test, type TestContext } from 'node:test';
import { errorFrame, type AckFrame, type AckStatus } from '@chat/shared';
import { NodeMetrics } from './metrics.js';
import {
  SEND_ID_PREFIX,
  SendDedup,
  sendIdOf,
  sendKeyOf,
  type SendAnswer,
  type SendKey,
} from './send-dedup.js';

const key = (over: Partial<SendKey> = {}): SendKey => ({
  userId: 'alice',
  cid: 'c1',
  to: 'bob',
  body: 'hi',
  ...over,
});

const ack = (id: string, status: AckStatus = 'accepted'): AckFrame => ({
  type: 'ack',
  id,
  status,
  cid: 'c1',
});

/** A window on a clock the test moves, and a send function that records each attempt's id. */
function setup(
  t: TestContext,
  options: { windowMs?: number; maxPerUser?: number; maxEntries?: number } = {},
) {
  const metrics = new NodeMetrics({ defaultMetrics: false });
  let clock = 1000;
  const dedup = new SendDedup({ windowMs: 60_000, ...options, metrics, now: () => clock });
  t.after(() => dedup.close());
  const attempts: string[] = [];
  /** Answers each attempt with `answer(id)`, at once. */
  const sender =
    (answer: (id: string) => SendAnswer) =>
    (id: string): Promise<SendAnswer> => {
      attempts.push(id);
      return Promise.resolve(answer(id));
    };
  const counted = async (result: string) =>
    (await metrics.sendRetries.get()).values.find((v) => v.labels.result === result)?.value ?? 0;
  const evictions = async () => (await metrics.sendDedupEvictions.get()).values[0]?.value ?? 0;
  return {
    dedup,
    attempts,
    sender,
    counted,
    evictions,
    advance: (ms: number) => (clock += ms),
  };
}

/** A promise and the functions that settle it, for an attempt the test answers later. */
function deferred<T>() {
  let resolve!: (value: T) => void;
  let reject!: (err: Error) => void;
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

describe('sendIdOf', () => {
  test('is the same for the same sender, cid, receiver and body, and differs when any differs', () => {
    const id = sendIdOf(key());
    assert.equal(sendIdOf(key()), id);
    assert.match(id, /^c:[A-Za-z0-9_-]{22}$/);
    const others = [
      key({ userId: 'carol' }),
      key({ cid: 'c2' }),
      key({ to: 'dave' }),
      key({ body: 'hi!' }),
      // Fields are not simply concatenated: moving a character from one field to the next changes the id.
      key({ cid: 'c1b', to: 'ob' }),
    ].map(sendIdOf);
    assert.equal(new Set([id, ...others]).size, 6);
  });

  test('cannot collide with a node’s own ids (<nodeId>-<epoch>-<seq>, node ids without a colon)', () => {
    assert.ok(SEND_ID_PREFIX.includes(':'));
    assert.doesNotMatch(sendIdOf(key()), /^[A-Za-z0-9._-]+$/);
  });
});

describe('sendKeyOf', () => {
  test('a v1 send: its cid, receiver and body', () => {
    const out = { kind: 'send', frame: { type: 'send', cid: 'c9', to: 'bob', body: 'yo' } } as const;
    assert.deepEqual(sendKeyOf('alice', out), { userId: 'alice', cid: 'c9', to: 'bob', body: 'yo' });
  });

  test('a seed frame with a string cid: every field is the message; without one, no key', () => {
    const frame = { sender_id: 'alice', receiver_id: 'bob', cid: 'k1', text: 'hello' };
    const k = sendKeyOf('alice', { kind: 'legacy', frame });
    assert.deepEqual(k && [k.cid, k.to], ['k1', 'bob']);
    const other = sendKeyOf('alice', { kind: 'legacy', frame: { ...frame, text: 'bye' } });
    assert.notEqual(other && sendIdOf(other), k && sendIdOf(k), 'another text is another message');
    for (const cid of [undefined, '', 7, { a: 1 }]) {
      const legacy = {
        sender_id: 'alice',
        receiver_id: 'bob',
        text: 'x',
        ...(cid === undefined ? {} : { cid }),
      };
      // The codec refuses a cid that is not 1-64 characters; sendKeyOf does not rely on it.
      const frame = legacy as { sender_id: string; receiver_id: string };
      assert.equal(sendKeyOf('alice', { kind: 'legacy', frame }), undefined, JSON.stringify(cid));
    }
  });
});

describe('SendDedup.send', () => {
  test('a first send goes through once, with the derived id', async (t) => {
    const { dedup, attempts, sender } = setup(t);
    const answer = await dedup.send(
      key(),
      sender((id) => ack(id)),
    );
    assert.deepEqual(attempts, [sendIdOf(key())]);
    assert.deepEqual(answer, ack(sendIdOf(key())));
    assert.equal(dedup.size, 1);
  });

  test('a retry while the first is in flight waits for the same answer and sends nothing', async (t) => {
    const { dedup, counted } = setup(t);
    const first = deferred<SendAnswer>();
    let calls = 0;
    const send = () => {
      calls++;
      return first.promise;
    };
    const a = dedup.send(key(), send);
    const b = dedup.send(key(), send);
    assert.equal(calls, 1);
    first.resolve(ack(sendIdOf(key()), 'delivered'));
    assert.deepEqual(await b, await a);
    assert.equal((await b).type, 'ack');
    assert.equal(await counted('joined'), 1);
  });

  for (const status of ['delivered', 'accepted', 'offline'] as const) {
    test(`a retry after a final answer (${status}) gets that answer again and sends nothing`, async (t) => {
      const { dedup, attempts, sender, counted } = setup(t);
      const send = sender((id) => ack(id, status));
      const first = await dedup.send(key(), send);
      const again = await dedup.send(key(), send);
      assert.deepEqual(again, first);
      assert.equal(attempts.length, 1);
      assert.equal(await counted('replayed'), 1);
    });
  }

  test('after NODE_ERR_BUS_UNAVAILABLE (not sent) the entry is dropped: the retry sends', async (t) => {
    const { dedup, attempts, sender, counted } = setup(t);
    const first = await dedup.send(
      key(),
      sender(() => errorFrame('NODE_ERR_BUS_UNAVAILABLE', 'not sent', 'c1')),
    );
    assert.equal(first.type === 'error' && first.code, 'NODE_ERR_BUS_UNAVAILABLE');
    assert.equal(dedup.size, 0);
    const second = await dedup.send(
      key(),
      sender((id) => ack(id)),
    );
    assert.equal(second.type, 'ack');
    assert.equal(attempts.length, 2);
    assert.equal(await counted('resent'), 0, 'a new send, not a retry from the window');
    assert.equal(await counted('replayed'), 0);
  });

  test('after NODE_ERR_BUS_TIMEOUT (may arrive) the retry sends again with the same id, then replays', async (t) => {
    const { dedup, attempts, sender, counted } = setup(t);
    await dedup.send(
      key(),
      sender(() => errorFrame('NODE_ERR_BUS_TIMEOUT', 'may arrive', 'c1')),
    );
    assert.equal(dedup.size, 1, 'kept: a retry must reuse the id');
    const second = await dedup.send(
      key(),
      sender((id) => ack(id)),
    );
    assert.deepEqual(attempts, [sendIdOf(key()), sendIdOf(key())]);
    assert.equal(await counted('resent'), 1);
    const third = await dedup.send(
      key(),
      sender((id) => ack(id, 'offline')),
    );
    assert.deepEqual(third, second, 'the resend’s ack is the answer from now on');
    assert.equal(attempts.length, 2);
    assert.equal(await counted('replayed'), 1);
  });

  test('after another error frame the entry is dropped', async (t) => {
    const { dedup, sender } = setup(t);
    await dedup.send(
      key(),
      sender(() => errorFrame('NODE_ERR_INTERNAL', 'boom', 'c1')),
    );
    assert.equal(dedup.size, 0);
  });

  test('the same cid with another body or receiver is another message', async (t) => {
    const { dedup, attempts, sender, counted } = setup(t);
    const send = sender((id) => ack(id));
    const a = await dedup.send(key(), send);
    const b = await dedup.send(key({ body: 'hi again' }), send);
    const c = await dedup.send(key({ to: 'carol' }), send);
    assert.equal(attempts.length, 3);
    assert.equal(new Set([a, b, c].map((x) => x.type === 'ack' && x.id)).size, 3);
    assert.equal(await counted('replayed'), 0);
  });

  test('a send that rejects drops the entry; retries that joined it get the rejection too', async (t) => {
    const { dedup, attempts, sender } = setup(t);
    const first = deferred<SendAnswer>();
    const a = dedup.send(key(), () => first.promise);
    const b = dedup.send(key(), () => first.promise);
    first.reject(new Error('boom'));
    await assert.rejects(a, /boom/);
    await assert.rejects(b, /boom/);
    assert.equal(dedup.size, 0);
    assert.equal(
      (
        await dedup.send(
          key(),
          sender((id) => ack(id)),
        )
      ).type,
      'ack',
    );
    assert.equal(attempts.length, 1);
  });

  test('a send that throws synchronously is a rejection, and the entry is dropped', async (t) => {
    const { dedup } = setup(t);
    await assert.rejects(
      dedup.send(key(), () => {
        throw new Error('sync');
      }),
      /sync/,
    );
    assert.equal(dedup.size, 0);
  });

  test('after the window a retry is a new send (same id, since the id is derived)', async (t) => {
    const { dedup, attempts, sender, advance, counted } = setup(t, { windowMs: 1000 });
    const send = sender((id) => ack(id));
    await dedup.send(key(), send);
    advance(999);
    await dedup.send(key(), send);
    assert.equal(attempts.length, 1, 'within the window');
    advance(1);
    await dedup.send(key(), send);
    assert.deepEqual(attempts, [sendIdOf(key()), sendIdOf(key())]);
    assert.equal(await counted('replayed'), 1);
  });

  test('the window runs from the answer, not from the first attempt', async (t) => {
    const { dedup, attempts, advance } = setup(t, { windowMs: 1000 });
    const slow = deferred<SendAnswer>();
    const first = dedup.send(key(), () => {
      attempts.push('1');
      return slow.promise;
    });
    advance(900);
    slow.resolve(ack(sendIdOf(key())));
    await first;
    advance(900);
    await dedup.send(key(), () => Promise.reject(new Error('must not send')));
    assert.equal(attempts.length, 1);
  });

  test('an attempt still in flight when its entry expires: its answer is not recorded', async (t) => {
    const { dedup, sender, advance, attempts } = setup(t, { windowMs: 1000 });
    const slow = deferred<SendAnswer>();
    const first = dedup.send(key(), () => slow.promise);
    advance(1000);
    assert.equal(dedup.sweep(), 1);
    slow.resolve(ack(sendIdOf(key())));
    assert.equal((await first).type, 'ack', 'the first sender still gets its answer');
    assert.equal(dedup.size, 0);
    await dedup.send(
      key(),
      sender((id) => ack(id)),
    );
    assert.equal(attempts.length, 1, 'the retry after the window was sent');
  });
});

describe('SendDedup bounds', () => {
  test('per sender: the oldest entry goes first, counted; other senders keep theirs', async (t) => {
    const { dedup, attempts, sender, evictions } = setup(t, { maxPerUser: 2 });
    const send = sender((id) => ack(id));
    await dedup.send(key({ userId: 'carol' }), send);
    for (const cid of ['a', 'b', 'c']) await dedup.send(key({ cid }), send);
    assert.equal(await evictions(), 1);
    assert.equal(dedup.size, 3);
    await dedup.send(key({ cid: 'c' }), send);
    await dedup.send(key({ cid: 'b' }), send);
    await dedup.send(key({ userId: 'carol' }), send);
    assert.equal(attempts.length, 4, 'b, c and carol’s are still in the window');
    await dedup.send(key({ cid: 'a' }), send);
    assert.equal(attempts.length, 5, 'a was evicted: sent again');
  });

  test('in all: the oldest entry of any sender goes first, counted', async (t) => {
    const { dedup, attempts, sender, evictions } = setup(t, { maxEntries: 3 });
    const send = sender((id) => ack(id));
    for (const userId of ['u1', 'u2', 'u3', 'u4', 'u5']) await dedup.send(key({ userId }), send);
    assert.equal(dedup.size, 3);
    assert.equal(await evictions(), 2);
    await dedup.send(key({ userId: 'u5' }), send);
    assert.equal(attempts.length, 5);
    await dedup.send(key({ userId: 'u1' }), send);
    assert.equal(attempts.length, 6);
  });

  test('an evicted in-flight attempt still answers its sender; its answer is not recorded', async (t) => {
    const { dedup, sender, attempts } = setup(t, { maxEntries: 1 });
    const slow = deferred<SendAnswer>();
    const first = dedup.send(key(), () => slow.promise);
    await dedup.send(
      key({ cid: 'other' }),
      sender((id) => ack(id)),
    );
    slow.resolve(ack(sendIdOf(key())));
    assert.equal((await first).type, 'ack');
    assert.equal(dedup.size, 1);
    await dedup.send(
      key(),
      sender((id) => ack(id)),
    );
    assert.equal(attempts.length, 2, 'the first was forgotten: its retry sent again');
  });
});

describe('SendDedup.sweep', () => {
  test('drops what expired, keeps the rest', async (t) => {
    const { dedup, sender, advance } = setup(t, { windowMs: 1000 });
    const send = sender((id) => ack(id));
    await dedup.send(key({ cid: 'old' }), send);
    advance(600);
    await dedup.send(key({ cid: 'young' }), send);
    advance(400);
    assert.equal(dedup.sweep(), 1);
    assert.equal(dedup.size, 1);
    advance(600);
    assert.equal(dedup.sweep(), 1);
    assert.equal(dedup.size, 0);
    assert.equal(dedup.sweep(), 0);
  });
});

describe('SendDedup off and close', () => {
  test('window 0: not enabled, every send goes through', async (t) => {
    const { dedup, attempts, sender, counted } = setup(t, { windowMs: 0 });
    assert.equal(dedup.enabled, false);
    const send = sender((id) => ack(id));
    await dedup.send(key(), send);
    await dedup.send(key(), send);
    assert.equal(attempts.length, 2);
    assert.equal(dedup.size, 0);
    assert.equal(await counted('replayed'), 0);
  });

  test('close forgets every entry and can be called twice', async (t) => {
    const { dedup, sender } = setup(t);
    await dedup.send(
      key(),
      sender((id) => ack(id)),
    );
    dedup.close();
    dedup.close();
    assert.equal(dedup.size, 0);
  });
});
