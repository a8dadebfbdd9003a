// One contract suite for every ChatBus implementation (socket.io-redis-adapter's test/test-runner.ts runs
// one suite per adapter; centrifuge runs shared suites per broker). Each guarantee written in
// node/src/bus/types.ts is checked here, against the in-process bus and against Kafka, so the two cannot
// drift. Where a difference is inherent, the fixture says so and why.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { describe, test, type TestContext } from 'node:test';
import { isChatError, type BusMessage, type MemberHeartbeat, type PresenceRecord } from '@chat/shared';
import type { BusHandlers, ChatBus, MessagePosition } from '@chat/node';
import { pollUntil } from '../poll.js';

/** One isolated backend (a hub, a topic prefix) for one test. */
export interface BusBackend {
  /** A bus for node `nodeId` on this backend, not started; the backend stops it when the test ends. */
  connect(nodeId: string): ChatBus;
  /**
   * Makes the backend refuse publishes (`true`) or take them again (`false`). Absent when the backend
   * cannot do it cheaply and honestly; `BusContractOptions.unavailableSkip` then says why.
   */
  setAvailable?(available: boolean): void | Promise<void>;
}

export interface BusContractOptions {
  /** Creates a fresh backend for one test; registers its cleanup on `t`. */
  createBackend(t: TestContext): Promise<BusBackend>;
  /** Why the "backend unavailable" case is skipped for this bus (when `setAvailable` is absent). */
  readonly unavailableSkip?: string;
  /** How long to wait for a record to arrive (default 10 s). */
  readonly deliveryTimeoutMs?: number;
}

/** Everything a started bus reported, in order. */
export interface Recorder {
  readonly bus: ChatBus;
  readonly messages: BusMessage[];
  /** Where each message was read, by message id (the latest reading). */
  readonly positions: Map<string, MessagePosition>;
  readonly presence: { nodeId: string; userId: string; record: PresenceRecord | null }[];
  readonly members: { id: string; heartbeat: MemberHeartbeat | null }[];
  readonly readyChanges: boolean[];
  /** Presence folded "latest wins": key `nodeId/userId` to its record. */
  presenceView(): Map<string, PresenceRecord>;
  /** Members folded "latest wins". */
  memberView(): Map<string, MemberHeartbeat>;
}

function record(bus: ChatBus): { recorder: Recorder; handlers: BusHandlers } {
  const recorder: Recorder = {
    bus,
    messages: [],
    positions: new Map(),
    presence: [],
    members: [],
    readyChanges: [],
    presenceView() {
      const view = new Map<string, PresenceRecord>();
      for (const { nodeId, userId, record } of this.presence) {
        if (record) view.set(`${nodeId}/${userId}`, record);
        else view.delete(`${nodeId}/${userId}`);
      }
      return view;
    },
    memberView() {
      const view = new Map<string, MemberHeartbeat>();
      for (const { id, heartbeat } of this.members) {
        if (heartbeat) view.set(id, heartbeat);
        else view.delete(id);
      }
      return view;
    },
  };
  const handlers: BusHandlers = {
    onMessage: (message, position) => {
      recorder.messages.push(message);
      recorder.positions.set(message.id, position);
    },
    onPresence: (nodeId, userId, rec) => recorder.presence.push({ nodeId, userId, record: rec }),
    onMember: (id, heartbeat) => recorder.members.push({ id, heartbeat }),
    onReadyChange: (ready) => recorder.readyChanges.push(ready),
    // Every previous owner counts as alive: a new owner waits for the release (a clean hand-over).
    isMemberAlive: () => true,
  };
  return { recorder, handlers };
}

let seq = 0;

/** A valid cross-node message. */
export function message(origin: string, from: string, to: string, body: string): BusMessage {
  const id = `m-${randomBytes(4).toString('hex')}-${seq++}`;
  const ts = Date.now();
  return { v: 1, id, origin, from, to, ts, frame: { type: 'message', id, from, to, body, ts } };
}

function presence(nodeId: string, userId: string): PresenceRecord {
  return { v: 1, userId, nodeId, epoch: 'e1' };
}

function heartbeat(id: string, state: 'active' | 'draining' = 'active'): MemberHeartbeat {
  return {
    v: 1,
    id,
    url: `http://127.0.0.1:1/${id}`,
    weight: 1,
    state,
    epoch: 'e1',
    ts: Date.now(),
    intervalMs: 1000,
  };
}

async function rejectsUnavailable(promise: Promise<unknown>, what: string): Promise<void> {
  await assert.rejects(
    promise,
    (err: unknown) => isChatError(err) && err.code === 'KAFKA_ERR_UNAVAILABLE' && err.retryable,
    `${what} should reject with a retryable KAFKA_ERR_UNAVAILABLE`,
  );
}

/** Registers the ChatBus contract for one implementation. */
export function busContractSuite(name: string, options: BusContractOptions): void {
  const timeoutMs = options.deliveryTimeoutMs ?? 10_000;
  const waitFor = <T>(check: () => T | undefined | false, what: string) =>
    pollUntil(check, { timeoutMs, intervalMs: 5, what });

  async function setup(t: TestContext) {
    const backend = await options.createBackend(t);
    /** A started bus that reads `shards` (default: every shard, the broadcast of the seed design). */
    const start = async (nodeId: string, shards: ReadonlySet<number> | 'all' = 'all') => {
      const bus = backend.connect(nodeId);
      const { recorder, handlers } = record(bus);
      await bus.start(handlers);
      bus.assignShards(shards);
      return recorder;
    };
    return { backend, start };
  }

  describe(`ChatBus contract: ${name}`, () => {
    describe('start', () => {
      test('resolves ready: isReady() true and onReadyChange(true) reported once', async (t) => {
        const { start } = await setup(t);
        const a = await start('a');
        assert.equal(a.bus.isReady(), true);
        assert.deepEqual(a.readyChanges, [true]);
      });

      test('publishing on a bus that was never started rejects as unavailable', async (t) => {
        const { backend } = await setup(t);
        const bus = backend.connect('idle');
        await rejectsUnavailable(bus.publishMessage(message('idle', 'x', 'y', 'hi'), 0), 'publishMessage');
        await rejectsUnavailable(bus.publishPresence([{ userId: 'x', record: null }]), 'publishPresence');
        await rejectsUnavailable(bus.publishHeartbeat(heartbeat('idle')), 'publishHeartbeat');
        assert.equal(bus.isReady(), false);
      });
    });

    describe('publishMessage / onMessage', () => {
      test('a published message reaches every started bus, its own included, with the same content', async (t) => {
        const { start } = await setup(t);
        const [a, b] = await Promise.all([start('a'), start('b')]);
        const sent = message('a', 'alice', 'bob', 'hello bob');
        await a.bus.publishMessage(sent, 0);
        const got = await waitFor(() => b.messages.find((m) => m.id === sent.id), 'the message on b');
        assert.deepEqual(got, sent);
        assert.deepEqual(
          await waitFor(() => a.messages.find((m) => m.id === sent.id), 'the message on a'),
          sent,
        );
      });

      test('per receiver, messages arrive in publish order (also when published without waiting)', async (t) => {
        const { start } = await setup(t);
        const [a, b] = await Promise.all([start('a'), start('b')]);
        const sent: BusMessage[] = [];
        for (let i = 0; i < 60; i++) sent.push(message('a', 'alice', i % 3 === 0 ? 'carol' : 'bob', `#${i}`));
        await Promise.all(sent.map((m) => a.bus.publishMessage(m, 0)));
        await waitFor(() => b.messages.length >= sent.length, 'all messages on b');
        for (const to of ['bob', 'carol']) {
          assert.deepEqual(
            b.messages.filter((m) => m.to === to).map((m) => m.frame.body),
            sent.filter((m) => m.to === to).map((m) => m.frame.body),
            `order for ${to}`,
          );
        }
        assert.equal(b.messages.length, sent.length, 'nothing twice');
      });

      test('an invalid record is skipped, not delivered, and the next one still is', async (t) => {
        const { start } = await setup(t);
        const [a, b] = await Promise.all([start('a'), start('b')]);
        // What another version might produce during a rolling deploy: a field this version does not know.
        const bad = { ...message('a', 'alice', 'bob', 'bad'), extra: true } as unknown as BusMessage;
        const good = message('a', 'alice', 'bob', 'good');
        await a.bus.publishMessage(bad, 0);
        await a.bus.publishMessage(good, 0);
        await waitFor(() => b.messages.some((m) => m.id === good.id), 'the valid message');
        assert.deepEqual(
          b.messages.map((m) => m.frame.body),
          ['good'],
        );
      });
    });

    describe('shards (assignShards)', () => {
      test("a shard's messages reach only the bus that owns it", async (t) => {
        const { start } = await setup(t);
        const [a, b] = await Promise.all([start('a', new Set([0])), start('b', new Set([1]))]);
        const [m0, m1] = [message('a', 'x', 'y0', 'zero'), message('b', 'x', 'y1', 'one')];
        await a.bus.publishMessage(m0, 0);
        await b.bus.publishMessage(m1, 1);
        await waitFor(() => a.messages.some((m) => m.id === m0.id), 'shard 0 on a');
        await waitFor(() => b.messages.some((m) => m.id === m1.id), 'shard 1 on b');
        // Markers published after: once they arrived, anything misrouted would have too.
        const [k0, k1] = [message('a', 'x', 'y0', 'marker 0'), message('a', 'x', 'y1', 'marker 1')];
        await a.bus.publishMessage(k0, 0);
        await a.bus.publishMessage(k1, 1);
        await waitFor(() => a.messages.some((m) => m.id === k0.id), 'marker 0 on a');
        await waitFor(() => b.messages.some((m) => m.id === k1.id), 'marker 1 on b');
        assert.deepEqual(
          a.messages.map((m) => m.frame.body),
          ['zero', 'marker 0'],
        );
        assert.deepEqual(
          b.messages.map((m) => m.frame.body),
          ['one', 'marker 1'],
        );
      });

      test('hand-over: the new owner starts where the old one released; nothing lost or twice', async (t) => {
        const { start } = await setup(t);
        const [a, b] = await Promise.all([start('a', new Set([0])), start('b', new Set())]);
        const first = Array.from({ length: 20 }, (_, i) => message('a', 'x', 'y', `first ${i}`));
        for (const m of first) await a.bus.publishMessage(m, 0);
        await waitFor(() => a.messages.length === 20, 'the first 20 on a');
        a.bus.assignShards(new Set());
        // Published while nobody owns the shard: its next owner gets them.
        const second = Array.from({ length: 20 }, (_, i) => message('a', 'x', 'y', `second ${i}`));
        for (const m of second) await a.bus.publishMessage(m, 0);
        b.bus.assignShards(new Set([0]));
        await waitFor(() => b.messages.length >= 20, 'the second 20 on b');
        const marker = message('a', 'x', 'y', 'marker');
        await a.bus.publishMessage(marker, 0);
        await waitFor(() => b.messages.some((m) => m.id === marker.id), 'the marker on b');
        assert.deepEqual(
          b.messages.map((m) => m.frame.body),
          [...second.map((m) => m.frame.body), 'marker'],
          'b gets exactly what a did not read, in order',
        );
        assert.equal(a.messages.length, 20, 'a read nothing after it released the shard');
      });

      test('backfill: a new owner told to read back gets that many records before its start, flagged, after onShardTaken', async (t) => {
        const { backend, start } = await setup(t);
        const a = await start('a', new Set([0]));
        const first = ['one', 'two', 'three'].map((body) => message('a', 'x', 'y', body));
        for (const m of first) await a.bus.publishMessage(m, 0);
        await waitFor(() => a.messages.length === 3, 'the three on a');
        await a.bus.stop(); // releases the shard at its end
        const bus = backend.connect('b');
        const { recorder: b, handlers } = record(bus);
        const taken: number[][] = [];
        await bus.start({
          ...handlers,
          backfill: 2,
          onShardTaken: (shard, from, at) => taken.push([shard, from, at, b.messages.length]),
        });
        bus.assignShards(new Set([0]));
        const after = message('b', 'x', 'y', 'after');
        await bus.publishMessage(after, 0);
        await waitFor(() => b.messages.some((m) => m.id === after.id), 'the new record on b');
        const startAt = (a.positions.get(first[2]?.id ?? '')?.offset ?? NaN) + 1;
        assert.deepEqual(
          taken,
          [[0, startAt - 2, startAt, 0]],
          'taken at the release, reading back 2, before any record',
        );
        assert.deepEqual(
          b.messages.map((m) => [m.frame.body, b.positions.get(m.id)?.backfill === true]),
          [
            ['two', true],
            ['three', true],
            ['after', false],
          ],
        );
      });

      for (const how of ['assignShards', 'stop'] as const) {
        test(`a held record (heldFloorOf) is not passed by the position released by ${how}; the next owner reads it again`, async (t) => {
          const { backend, start } = await setup(t);
          const bus = backend.connect('a');
          const { recorder: a, handlers } = record(bus);
          // The node holds the first message (its receiver is not connected yet) until the shard goes.
          let held: MessagePosition | undefined;
          const released: number[] = [];
          await bus.start({
            ...handlers,
            onMessage: (m, p) => {
              handlers.onMessage(m, p);
              if (m.frame.body === 'held') held = p;
            },
            heldFloorOf: (shard) => (held?.shard === shard ? held.offset : undefined),
            onShardReleased: (shard) => {
              released.push(shard);
              if (held?.shard === shard) held = undefined;
            },
          });
          bus.assignShards(new Set([0]));
          const sent = ['before', 'held', 'after 1', 'after 2'].map((body) => message('a', 'x', 'y', body));
          for (const m of sent) await bus.publishMessage(m, 0);
          await waitFor(() => a.messages.length === sent.length, 'all four on a');
          const offsets = sent.map((m) => a.positions.get(m.id));
          assert.ok(
            offsets.every((p, i) => p?.shard === 0 && (i === 0 || p.offset > (offsets[i - 1]?.offset ?? 0))),
            `positions: shard 0, growing offsets (${JSON.stringify(offsets)})`,
          );
          if (how === 'stop') await bus.stop();
          else bus.assignShards(new Set());
          assert.deepEqual(released, [0], 'the node is told the shard went');
          // Started after the release (its start replays the positions written before it).
          const b = await start('b', new Set([0]));
          const marker = message('b', 'x', 'y', 'marker');
          await b.bus.publishMessage(marker, 0);
          await waitFor(() => b.messages.some((m) => m.id === marker.id), 'the marker on b');
          // Kafka: a's release after assignShards is written asynchronously; a b that starts before it is
          // written and sees no position at all for this fresh shard starts at its first record
          // ('before' again). Never after the held record.
          const bodies = b.messages.map((m) => m.frame.body);
          assert.deepEqual(
            bodies[0] === 'before' && how === 'assignShards' ? bodies.slice(1) : bodies,
            ['held', 'after 1', 'after 2', 'marker'],
            'b starts at the held record, not after what a read',
          );
          assert.deepEqual(b.positions.get(sent[1]?.id ?? ''), a.positions.get(sent[1]?.id ?? ''));
        });
      }
    });

    describe('a handler that throws', () => {
      test('does not stop delivery: the records after it still arrive, on every topic', async (t) => {
        const { backend, start } = await setup(t);
        const a = await start('a');
        const bus = backend.connect('b');
        const { recorder: b, handlers } = record(bus);
        // A bug in the node: every handler throws on its first record.
        const thrown = new Set<string>();
        const once =
          <A extends unknown[]>(name: string, f: (...args: A) => void) =>
          (...args: A) => {
            if (!thrown.has(name)) {
              thrown.add(name);
              throw new Error(`handler bug (${name})`);
            }
            f(...args);
          };
        await bus.start({
          ...handlers,
          onMessage: once('message', (m: BusMessage, p: MessagePosition) => handlers.onMessage(m, p)),
          onPresence: once('presence', (n: string, u: string, r: PresenceRecord | null) =>
            handlers.onPresence(n, u, r),
          ),
          onMember: once('member', (id: string, hb: MemberHeartbeat | null) => handlers.onMember(id, hb)),
        });
        bus.assignShards('all');
        const [first, second] = [message('a', 'x', 'y', 'first'), message('a', 'x', 'y', 'second')];
        await a.bus.publishMessage(first, 0);
        await a.bus.publishMessage(second, 0);
        await a.bus.publishPresence([{ userId: 'u1', record: presence('a', 'u1') }]);
        await a.bus.publishPresence([{ userId: 'u2', record: presence('a', 'u2') }]);
        await a.bus.publishHeartbeat(heartbeat('a'));
        await a.bus.publishHeartbeat(heartbeat('a', 'draining'));
        await waitFor(() => b.messages.some((m) => m.id === second.id), 'the message after the throw');
        // Presence entries of different users may sit in different partitions (no order between them):
        // whichever arrived first was the one the handler threw on, and the other still arrives.
        await waitFor(
          () => ['a/u1', 'a/u2'].some((key) => b.presenceView().has(key)),
          'the presence entry after the throw',
        );
        await waitFor(() => b.memberView().get('a')?.state === 'draining', 'the heartbeat after the throw');
        assert.equal(bus.isReady(), true, 'the bus is still up');
      });
    });

    describe('publishPresence / onPresence', () => {
      test('set and remove are seen by another bus, and the latest state is replayed to a later bus', async (t) => {
        const { start } = await setup(t);
        const [a, b] = await Promise.all([start('a'), start('b')]);
        await a.bus.publishPresence([
          { userId: 'alice', record: presence('a', 'alice') },
          { userId: 'carol', record: presence('a', 'carol') },
        ]);
        await a.bus.publishPresence([{ userId: 'carol', record: null }]);
        await waitFor(
          () => b.presence.some((p) => p.userId === 'carol' && p.record === null),
          'the removal of carol on b',
        );
        // Order is per entry (Kafka: per key), not across entries.
        const history = (userId: string) =>
          b.presence.filter((p) => p.userId === userId).map((p) => p.record);
        assert.deepEqual(history('alice'), [presence('a', 'alice')]);
        assert.deepEqual(history('carol'), [presence('a', 'carol'), null]);
        // A bus started later has the latest state as soon as start() resolves: no waiting.
        const c = await start('c');
        assert.deepEqual([...c.presenceView()], [['a/alice', presence('a', 'alice')]]);
      });

      test('an entry arrives with its node and user apart (user ids with dots and @)', async (t) => {
        const { start } = await setup(t);
        const [a, b] = await Promise.all([start('a'), start('b')]);
        // UserId allows dots, dashes and @: the presence key must still split into node and user.
        await a.bus.publishPresence([
          { userId: 'dana@example.org', record: presence('a', 'dana@example.org') },
        ]);
        await waitFor(() => b.presence.length > 0, 'presence on b');
        assert.deepEqual(b.presence[0], {
          nodeId: 'a',
          userId: 'dana@example.org',
          record: presence('a', 'dana@example.org'),
        });
      });
    });

    describe('publishHeartbeat / onMember', () => {
      test('heartbeat and tombstone are seen, and the latest state is replayed to a later bus', async (t) => {
        const { start } = await setup(t);
        const [a, b, x] = await Promise.all([start('a'), start('b'), start('x')]);
        const hbA = heartbeat('a');
        const hbX = heartbeat('x', 'draining');
        await a.bus.publishHeartbeat(hbA);
        await x.bus.publishHeartbeat(hbX);
        await x.bus.publishHeartbeat(null);
        await waitFor(() => b.members.some((m) => m.id === 'x' && m.heartbeat === null), 'x tombstone on b');
        assert.deepEqual(
          b.members.filter((m) => m.id === 'x').map((m) => m.heartbeat),
          [hbX, null],
        );
        assert.deepEqual(
          await waitFor(() => b.members.find((m) => m.id === 'a')?.heartbeat, 'a heartbeat on b'),
          hbA,
        );
        const c = await start('c');
        assert.deepEqual([...c.memberView()], [['a', hbA]]);
      });
    });

    describe('when the backend is unavailable', () => {
      test(
        'publishes reject with a retryable KAFKA_ERR_UNAVAILABLE and readiness says so; then it recovers',
        { skip: options.unavailableSkip },
        async (t) => {
          const { backend, start } = await setup(t);
          const setAvailable = backend.setAvailable?.bind(backend);
          assert.ok(setAvailable, 'backend.setAvailable');
          const [a, b] = await Promise.all([start('a'), start('b')]);
          await setAvailable(false);
          await rejectsUnavailable(
            a.bus.publishMessage(message('a', 'alice', 'bob', 'lost'), 0),
            'publishMessage',
          );
          await rejectsUnavailable(
            a.bus.publishPresence([{ userId: 'alice', record: presence('a', 'alice') }]),
            'publishPresence',
          );
          await rejectsUnavailable(a.bus.publishHeartbeat(heartbeat('a')), 'publishHeartbeat');
          assert.equal(a.bus.isReady(), false);
          assert.deepEqual(a.readyChanges, [true, false]);
          await setAvailable(true);
          await a.bus.publishHeartbeat(heartbeat('a'));
          await waitFor(() => a.bus.isReady(), 'a ready again');
          assert.deepEqual(a.readyChanges, [true, false, true]);
          const after = message('a', 'alice', 'bob', 'after');
          await a.bus.publishMessage(after, 0);
          await waitFor(() => b.messages.some((m) => m.id === after.id), 'the message after recovery');
          assert.equal(b.messages.filter((m) => m.frame.body === 'lost').length, 0);
        },
      );
    });

    describe('stop', () => {
      test('resolves, reports not ready, later publishes reject and no handler is called after it', async (t) => {
        const { start } = await setup(t);
        const [a, b] = await Promise.all([start('a'), start('b')]);
        const pending = a.bus.publishMessage(message('a', 'alice', 'bob', 'in flight'), 0);
        await a.bus.stop();
        // What was pending when stop() began is flushed, not dropped.
        await pending;
        await waitFor(() => b.messages.some((m) => m.frame.body === 'in flight'), 'the flushed message');
        assert.equal(a.bus.isReady(), false);
        assert.deepEqual(a.readyChanges, [true, false]);
        await rejectsUnavailable(
          a.bus.publishMessage(message('a', 'alice', 'bob', 'late'), 0),
          'publishMessage',
        );
        await rejectsUnavailable(
          a.bus.publishPresence([{ userId: 'alice', record: null }]),
          'publishPresence',
        );
        await rejectsUnavailable(a.bus.publishHeartbeat(null), 'publishHeartbeat');
        const seen = { messages: a.messages.length, presence: a.presence.length, members: a.members.length };
        const fromB = message('b', 'bob', 'alice', 'to a stopped bus');
        await b.bus.publishMessage(fromB, 0);
        await b.bus.publishPresence([{ userId: 'bob', record: presence('b', 'bob') }]);
        await b.bus.publishHeartbeat(heartbeat('b'));
        await waitFor(() => b.members.some((m) => m.id === 'b'), 'b sees its own heartbeat');
        await waitFor(() => b.messages.some((m) => m.id === fromB.id), 'b sees its own message');
        assert.deepEqual(
          { messages: a.messages.length, presence: a.presence.length, members: a.members.length },
          seen,
        );
        assert.deepEqual(a.readyChanges, [true, false]);
      });
    });
  });
}
