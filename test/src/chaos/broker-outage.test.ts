// Broker stop/restart and freeze/thaw under load (issue 11, "Outages"), real processes: a broker of this
// file's own, 3 chat nodes, 1 router, 42 clients through the router, ~150 msgs/s between users on
// different nodes (so every message goes through Kafka). Per case, the broker goes away for 8 s (stop
// then restart on the same port and data; or SIGSTOP then SIGCONT) while the load runs, and the test
// measures: the router's ring (polled every 100 ms), connections closed by the server, the time to answer
// every send, what every receiver got in the end, and each node's /readyz (polled every 100 ms). It prints
// the figures, then asserts them all at once, so a failure names every broken promise with its numbers.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { connect } from 'node:net';
import { after, before, describe, test, type TestContext } from 'node:test';
import { setTimeout as delay } from 'node:timers/promises';
import WebSocket from 'ws';
import { startNode, type NodeProcess } from '../harness/node-process.js';
import { startRouter, type RouterProcess } from '../harness/router-process.js';
import { TestClient } from '../harness/ws-client.js';
import { interruptBroker, useOwnKafka, type BrokerOutage, type KafkaFixture } from '../kafka/harness.js';
import { pollUntil } from '../poll.js';
import { firstAfter, printTable, quantile, startSampler, transitions, type Sample } from './monitors.js';

const NODES = 3;
const USERS = 42;
/** Target send rate over all senders (msgs/s), and a hard cap on sends per case. */
const RATE_PER_SEC = 150;
const MAX_SENDS = 6000;
const PUBLISH_TIMEOUT_MS = 2000;
/** Every send must be answered within this (the publish timeout + 1 s). */
const ANSWER_DEADLINE_MS = PUBLISH_TIMEOUT_MS + 1000;
const OUTAGE_MS = 8000;
const WARMUP_MS = 3000;
/** Load after every node is ready again. */
const AFTER_MS = 5000;
/** /readyz must follow the broker within this, both ways. */
const READYZ_FOLLOW_MS = 2000;
const POLL_MS = 100;
/** How long the run may take to deliver what was accepted, after the load stopped. */
const DRAIN_DEADLINE_MS = 20_000;
/** A receiver counts as drained after this long without a new message (late duplicates show up here). */
const QUIET_MS = 1000;

interface Sent {
  readonly cid: string;
  readonly from: string;
  readonly to: string;
  readonly fromNode: string;
  readonly toNode: string;
  readonly sentAt: number;
  answers: { at: number; type: string; status: string | undefined; code: string | undefined }[];
  received: number[];
}

describe('broker outage under load (3 nodes, 1 router, real broker)', () => {
  const cleanups: (() => unknown)[] = [];
  let kafka: KafkaFixture;

  before(
    async () => {
      kafka = await useOwnKafka({ after: (fn) => cleanups.push(fn) });
    },
    { timeout: 180_000 },
  );
  after(async () => {
    for (const fn of cleanups.reverse()) await fn();
  });

  test('broker stop for 8 s, then restart on the same port and data', { timeout: 90_000 }, (t) =>
    runCase(t, kafka, 'stop'),
  );
  test('broker frozen (SIGSTOP) for 8 s, then thawed', { timeout: 90_000 }, (t) =>
    runCase(t, kafka, 'freeze'),
  );
});

async function runCase(t: TestContext, kafka: KafkaFixture, kind: BrokerOutage): Promise<void> {
  const broker = kafka.broker;
  assert.ok(broker, 'this test needs a broker of its own');
  // A previous case that failed half-way may have left it stopped or frozen.
  await broker.thaw();
  await broker.restart();
  t.after(() => broker.thaw());
  const stop = new AbortController();
  t.after(() => stop.abort());

  const prefix = kafka.uniqueName(`outage-${kind}`);
  const common = {
    CHAT_KAFKA_BROKERS: kafka.brokers,
    CHAT_KAFKA_TOPIC_PREFIX: prefix,
    CHAT_CLUSTER_SHARDS: '12',
  };
  const nodeEnv = {
    ...common,
    CHAT_NODE_HEARTBEAT_INTERVAL_MS: '500',
    CHAT_NODE_HEARTBEAT_TIMEOUT_MS: '3000',
    CHAT_NODE_BUS_PUBLISH_TIMEOUT_MS: String(PUBLISH_TIMEOUT_MS),
  };
  const nodes: NodeProcess[] = await Promise.all(
    Array.from({ length: NODES }, (_, i) => startNode(t, { nodeId: `${kind}-n${i + 1}`, env: nodeEnv })),
  );
  const router: RouterProcess = await startRouter(t, {
    ...common,
    CHAT_ROUTER_MEMBER_TIMEOUT_MS: '3000',
    CHAT_ROUTER_PROBE_INTERVAL_MS: '300',
    CHAT_ROUTER_PROBE_FAILURES: '2',
    CHAT_ROUTER_HANDSHAKE_RATE_PER_SEC: '100000',
  });
  await pollUntil(async () => ringCount(await router.members()) >= NODES, {
    timeoutMs: 30_000,
    what: `the router's ring to hold ${NODES} nodes`,
  });

  // Clients through the router; every frame they get is tracked by cid (acks, errors) or body (messages).
  const users = Array.from({ length: USERS }, (_, i) => `${kind}-u${i}`);
  const sent = new Map<string, Sent>();
  const unknownMessages: string[] = [];
  let lastMessageAt = 0;
  const serverCloses: { user: string; code: number; at: number }[] = [];
  const clients = new Map<string, TestClient>();
  await Promise.all(
    users.map(async (user) => {
      const client = await TestClient.connect(t, router.wsUrl(user), ['chat.v1']);
      clients.set(user, client);
      client.ws.on('message', (data: Buffer, isBinary: boolean) => {
        if (isBinary) return;
        let frame: Record<string, unknown>;
        try {
          frame = JSON.parse(data.toString('utf8')) as Record<string, unknown>;
        } catch {
          return;
        }
        const at = Date.now();
        if (frame.type === 'message') {
          lastMessageAt = at;
          const s = sent.get(String(frame.body));
          if (s && s.to === user) s.received.push(at);
          else unknownMessages.push(String(frame.body));
        } else if ((frame.type === 'ack' || frame.type === 'error') && typeof frame.cid === 'string') {
          sent.get(frame.cid)?.answers.push({
            at,
            type: frame.type,
            status: typeof frame.status === 'string' ? frame.status : undefined,
            code: typeof frame.code === 'string' ? frame.code : undefined,
          });
        }
      });
      // Everything closed before the test body ends was closed by the other side.
      void client.closed.then(({ code }) => {
        if (!stop.signal.aborted) serverCloses.push({ user, code, at: Date.now() });
      });
    }),
  );

  // Where each user landed, from the nodes themselves; each user then sends to a user on another node.
  const nodeOf = new Map<string, string>();
  await Promise.all(
    users.map(async (user) => {
      const answers = await Promise.all(nodes.map((n) => n.presence(user)));
      const i = answers.findIndex((a) => a.localSessions > 0);
      assert.ok(i >= 0, `${user} is on no node`);
      nodeOf.set(user, nodes[i]?.nodeId ?? '');
    }),
  );
  const byNode = nodes.map((n) => users.filter((u) => nodeOf.get(u) === n.nodeId));
  const populated = byNode.filter((g) => g.length > 0);
  assert.ok(populated.length >= 2, `users on ${populated.length} node(s) only: no cross-node pairs`);
  const pairs: { from: string; to: string }[] = [];
  populated.forEach((group, g) => {
    const next = populated[(g + 1) % populated.length] ?? [];
    group.forEach((from, i) => pairs.push({ from, to: next[i % next.length] ?? '' }));
  });
  const nodeById = new Map(nodes.map((n) => [n.nodeId, n]));
  // Every sender's node must know where its receiver is before the load starts (presence over Kafka).
  await pollUntil(
    async () => {
      const known = await Promise.all(
        pairs.map(async ({ from, to }) => {
          const p = await nodeById.get(nodeOf.get(from) ?? '')?.presence(to);
          return p?.remoteNodes.includes(nodeOf.get(to) ?? '') ?? false;
        }),
      );
      return known.every(Boolean);
    },
    { timeoutMs: 20_000, intervalMs: 200, what: 'presence of every receiver on its sender’s node' },
  );

  // Monitors: each node's /readyz, and the router's ring, every 100 ms.
  const readyz = nodes.map((n) =>
    startSampler(
      async (signal) => (await fetch(n.httpUrl('/readyz'), { signal })).status,
      POLL_MS,
      stop.signal,
    ),
  );
  const ring = startSampler(
    async (signal) => ringCount((await (await router.admin('/members', { signal })).json()) as MembersBody),
    POLL_MS,
    stop.signal,
  );
  // The broker's listener (1: accepts TCP connections, 0: refused): when a stopping broker is really gone.
  const listener = startSampler((signal) => tcpOpen(broker.port, signal), POLL_MS, stop.signal);
  t.after(() => Promise.all([...readyz.map((r) => r.done), ring.done, listener.done]));

  // The load: RATE_PER_SEC over all pairs, round robin, from one 10 ms ticker.
  let sends = 0;
  let skipped = 0;
  const loadStart = Date.now();
  const ticker = setInterval(() => {
    const due = Math.min(Math.floor(((Date.now() - loadStart) * RATE_PER_SEC) / 1000), MAX_SENDS);
    while (sends < due) {
      const pair = pairs[sends % pairs.length];
      sends++;
      const client = pair && clients.get(pair.from);
      if (!pair || !client || client.ws.readyState !== WebSocket.OPEN) {
        skipped++;
        continue;
      }
      const cid = `${kind}-${sends}`;
      sent.set(cid, {
        cid,
        from: pair.from,
        to: pair.to,
        fromNode: nodeOf.get(pair.from) ?? '',
        toNode: nodeOf.get(pair.to) ?? '',
        sentAt: Date.now(),
        answers: [],
        received: [],
      });
      client.send({ type: 'send', cid, to: pair.to, body: cid });
    }
  }, 10);
  t.after(() => clearInterval(ticker));

  // Timeline: warm-up, outage (a timed window), back, all ready, some more load.
  await delay(WARMUP_MS, undefined, { signal: stop.signal });
  const outageAt = Date.now();
  const restore = await interruptBroker(broker, kind);
  const outAt = Date.now(); // the JVM has exited / is stopped
  await delay(Math.max(0, outageAt + OUTAGE_MS - Date.now()), undefined, { signal: stop.signal });
  const restoreAt = Date.now();
  await restore();
  const restoredAt = Date.now(); // serving metadata again / running again
  const allReadyAt = await pollUntil(
    () =>
      readyz.every((r) => r.samples.at(-1)?.value === 200 && (r.samples.at(-1)?.at ?? 0) > restoredAt)
        ? Date.now()
        : undefined,
    { timeoutMs: 30_000, intervalMs: POLL_MS, what: 'every node ready again after the broker came back' },
  ).catch(() => Number.NaN);
  await delay(AFTER_MS, undefined, { signal: stop.signal });
  clearInterval(ticker);
  const loadEnd = Date.now();

  // Drain: answers first (each has its deadline), then deliveries, then a quiet second for late copies.
  const all = [...sent.values()];
  const acceptedOf = (s: Sent) => s.answers.some((a) => a.type === 'ack' && a.status !== 'offline');
  await pollUntil(() => all.every((s) => s.answers.length > 0), {
    timeoutMs: ANSWER_DEADLINE_MS + 1000,
    intervalMs: 50,
    what: 'every send answered',
  }).catch(() => undefined);
  await pollUntil(() => all.every((s) => !acceptedOf(s) || s.received.length > 0), {
    timeoutMs: DRAIN_DEADLINE_MS,
    intervalMs: 100,
    what: 'every accepted message delivered',
  }).catch(() => undefined);
  await pollUntil(() => Date.now() - Math.max(lastMessageAt, loadEnd) >= QUIET_MS, {
    timeoutMs: QUIET_MS * 5,
    intervalMs: 50,
    what: 'a quiet second',
  }).catch(() => undefined);
  const closesDuringRun = [...serverCloses];
  stop.abort();
  await Promise.all([...readyz.map((r) => r.done), ring.done, listener.done]);

  // Figures.
  const answerMs = (s: Sent) => (s.answers[0] ? s.answers[0].at - s.sentAt : Number.POSITIVE_INFINITY);
  const latencies = all.map(answerMs);
  const unanswered = all.filter((s) => s.answers.length === 0);
  const late = all.filter((s) => answerMs(s) > ANSWER_DEADLINE_MS);
  const lateDuringOutage = late.filter((s) => s.sentAt >= outageAt && s.sentAt <= restoredAt);
  const byAnswer = new Map<string, number>();
  for (const s of all) {
    const a = s.answers[0];
    const k = !a ? 'none' : a.type === 'ack' ? `ack ${a.status}` : `error ${a.code}`;
    byAnswer.set(k, (byAnswer.get(k) ?? 0) + 1);
  }
  const accepted = all.filter(acceptedOf);
  const closedUsers = new Set(closesDuringRun.map((c) => c.user));
  const lost = accepted.filter((s) => s.received.length === 0);
  const lostToConnected = lost.filter((s) => !closedUsers.has(s.to));
  const duplicated = all.filter((s) => s.received.length > 1);
  const isNotSent = (s: Sent) => s.answers.some((a) => a.code === 'NODE_ERR_BUS_UNAVAILABLE');
  const notSentButDelivered = all.filter((s) => isNotSent(s) && s.received.length > 0);
  const timeoutDelivered = all.filter(
    (s) => s.answers.some((a) => a.code === 'NODE_ERR_BUS_TIMEOUT') && s.received.length > 0,
  );
  const twiceAnswered = all.filter((s) => s.answers.length > 1);
  const deliveryMs = accepted
    .filter((s) => s.received[0] !== undefined)
    .map((s) => (s.received[0] ?? 0) - s.sentAt);
  const ringMin = Math.min(...ring.samples.filter((s) => s.value >= 0).map((s) => s.value));
  const ringLow = ring.samples.filter((s) => s.value >= 0 && s.value < NODES);
  const ringUnanswered = ring.samples.filter((s) => s.value < 0).length;
  // The broker is gone at SIGSTOP (freeze), or when its listener refuses connections (stop: a broker
  // shutting down serves for a while after SIGTERM; /readyz must follow the broker, not the signal).
  const listenerClosed = firstAfter(listener.samples, outageAt, (v) => v === 0)?.at;
  const goneAt = kind === 'freeze' ? outageAt : (listenerClosed ?? outAt);
  const ready = nodes.map((n, i) => {
    const samples = readyz[i]?.samples ?? [];
    const down = firstAfter(samples, outageAt, (v) => v === 503);
    const up = firstAfter(samples, restoredAt, (v) => v === 200);
    const flaps = samples.filter((s) => s.at > (down?.at ?? outageAt) && s.at < restoreAt && s.value === 200);
    return {
      node: n.nodeId,
      toDownMs: down ? down.at - goneAt : Number.NaN,
      toDownFromSignalMs: down ? down.at - outageAt : Number.NaN,
      toUpMs: up ? up.at - restoredAt : Number.NaN,
      toUpFromRestoreMs: up ? up.at - restoreAt : Number.NaN,
      readyWhileOut: flaps.length,
      timeline: compact(transitions(samples), outageAt),
      errorLines: countErrorLines(n.logFile),
    };
  });
  const fmt = (v: number) => (Number.isFinite(v) ? String(Math.round(v)) : String(v));
  printTable(`broker outage (${kind}) figures`, [
    [
      'outage window (ms)',
      `${restoreAt - outageAt} (${kind === 'stop' ? `listener closed ${fmt(goneAt - outageAt)}, JVM exited ${outAt - outageAt}` : `stopped ${outAt - outageAt}`} ms after the signal; back ${restoredAt - restoreAt} ms after ${kind === 'stop' ? 'restart' : 'thaw'} began)`,
    ],
    ['all nodes ready (ms after back)', fmt(allReadyAt - restoredAt)],
    [
      'sends / skipped (sender closed)',
      `${all.length} / ${skipped} in ${loadEnd - loadStart} ms (${fmt((all.length * 1000) / (loadEnd - loadStart))}/s)`,
    ],
    ['answers', [...byAnswer].map(([k, v]) => `${k}: ${v}`).join(', ')],
    [
      'answer ms p50/p99/max',
      `${fmt(quantile(latencies, 0.5))} / ${fmt(quantile(latencies, 0.99))} / ${fmt(Math.max(...latencies))}`,
    ],
    [
      `answers later than ${ANSWER_DEADLINE_MS} ms / none`,
      `${late.length} (${lateDuringOutage.length} sent during the outage) / ${unanswered.length}`,
    ],
    ['answered twice', twiceAnswered.length],
    [
      'accepted|delivered / lost (to connected)',
      `${accepted.length} / ${lost.length} (${lostToConnected.length})`,
    ],
    [
      'delivery ms p50/p99/max (accepted)',
      `${fmt(quantile(deliveryMs, 0.5))} / ${fmt(quantile(deliveryMs, 0.99))} / ${fmt(Math.max(...deliveryMs))}`,
    ],
    ['duplicates / unknown messages', `${duplicated.length} / ${unknownMessages.length}`],
    ['NODE_ERR_BUS_UNAVAILABLE but delivered', notSentButDelivered.length],
    ['NODE_ERR_BUS_TIMEOUT and delivered (allowed)', timeoutDelivered.length],
    [
      'ring min / samples < 3 / unanswered polls',
      `${ringMin} / ${ringLow.length} of ${ring.samples.length} / ${ringUnanswered}`,
    ],
    ['ring timeline (ms from outage: size)', compact(transitions(ring.samples), outageAt)],
    [
      'connections closed by the server',
      `${closesDuringRun.length} of ${USERS}${closesDuringRun.length ? ` (codes ${[...new Set(closesDuringRun.map((c) => c.code))].join(',')}; first at ${fmt((closesDuringRun[0]?.at ?? 0) - outageAt)} ms)` : ''}`,
    ],
    ...ready.flatMap((r): [string, string][] => [
      [
        `${r.node} /readyz 503 after gone / 200 after back`,
        `${fmt(r.toDownMs)} ms (${fmt(r.toDownFromSignalMs)} after the signal) / ${fmt(r.toUpMs)} ms (${fmt(r.toUpFromRestoreMs)} ms after ${kind === 'stop' ? 'restart' : 'thaw'} began); 200 while out: ${r.readyWhileOut} samples; error log lines: ${r.errorLines}`,
      ],
      [`${r.node} /readyz timeline`, r.timeline],
    ]),
  ]);

  // Assertions, all at once, with their numbers.
  const failures: string[] = [];
  if (ringLow.length > 0 || !Number.isFinite(ringMin))
    failures.push(
      `the router's ring dropped below ${NODES}: min ${ringMin}, ${ringLow.length} of ${ring.samples.length} samples, first at ${fmt((ringLow[0]?.at ?? 0) - outageAt)} ms from the outage`,
    );
  if (closesDuringRun.length > 0)
    failures.push(
      `${closesDuringRun.length} of ${USERS} connections closed by the server (codes ${closesDuringRun.map((c) => c.code).join(',')})`,
    );
  if (late.length > 0)
    failures.push(
      `${late.length} of ${all.length} sends answered later than ${ANSWER_DEADLINE_MS} ms or never (${unanswered.length} never; ${lateDuringOutage.length} sent during the outage; max ${fmt(Math.max(...latencies))} ms)`,
    );
  if (lost.length > 0)
    failures.push(
      `${lost.length} of ${accepted.length} messages acked accepted/delivered never reached their receiver (${lostToConnected.length} to receivers connected throughout; e.g. ${lost
        .slice(0, 3)
        .map((s) => `${s.cid} ${s.fromNode}->${s.toNode} sent at ${s.sentAt - outageAt} ms`)
        .join('; ')})`,
    );
  if (duplicated.length > 0)
    failures.push(
      `${duplicated.length} messages delivered more than once (max ${Math.max(...duplicated.map((s) => s.received.length))} copies)`,
    );
  if (notSentButDelivered.length > 0)
    failures.push(
      `${notSentButDelivered.length} messages answered NODE_ERR_BUS_UNAVAILABLE ("not sent") were delivered`,
    );
  for (const r of ready) {
    if (!(r.toDownMs <= READYZ_FOLLOW_MS))
      failures.push(
        `${r.node} /readyz turned 503 ${fmt(r.toDownMs)} ms after the broker was gone (${fmt(r.toDownFromSignalMs)} ms after the ${kind} signal; limit ${READYZ_FOLLOW_MS})`,
      );
    if (r.readyWhileOut > 0)
      failures.push(
        `${r.node} /readyz said 200 in ${r.readyWhileOut} samples while the broker was out, after it had said 503`,
      );
    if (!(r.toUpMs <= READYZ_FOLLOW_MS))
      failures.push(
        `${r.node} /readyz turned 200 ${fmt(r.toUpMs)} ms after the broker was back (limit ${READYZ_FOLLOW_MS})`,
      );
  }
  assert.deepEqual(failures, [], `broker ${kind}:\n  ${failures.join('\n  ')}`);
}

interface MembersBody {
  ringSize?: number;
  members?: { inRing?: boolean; shards?: number | unknown[] }[];
}

/**
 * How many nodes the router places on: the smallest of its ring size, the members it says are in the
 * ring, and (once the owner table lands) the members that own shards.
 */
function ringCount(body: MembersBody): number {
  const members = body.members ?? [];
  const counts = [members.length];
  if (members.some((m) => m.inRing !== undefined)) counts.push(members.filter((m) => m.inRing).length);
  if (typeof body.ringSize === 'number') counts.push(body.ringSize);
  if (members.some((m) => m.shards !== undefined))
    counts.push(
      members.filter((m) => (Array.isArray(m.shards) ? m.shards.length > 0 : (m.shards ?? 0) > 0)).length,
    );
  return Math.min(...counts);
}

/** `t:value` transitions relative to `origin`, e.g. "-3000:200 850:503 9400:200". */
function compact(samples: readonly Sample[], origin: number): string {
  return samples.map((s) => `${s.at - origin}:${s.value}`).join(' ');
}

/** 1 when something accepts TCP connections on 127.0.0.1:`port`, 0 when refused. */
function tcpOpen(port: number, signal: AbortSignal): Promise<number> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: '127.0.0.1', port, signal });
    socket.once('connect', () => {
      socket.destroy();
      resolve(1);
    });
    socket.once('error', (err: NodeJS.ErrnoException) => {
      socket.destroy();
      if (err.code === 'ECONNREFUSED') resolve(0);
      else reject(err);
    });
  });
}

/** Error-level lines in a service's JSON log. */
function countErrorLines(file: string): number {
  try {
    return readFileSync(file, 'utf8')
      .split('\n')
      .filter((l) => l.includes('"level":"error"')).length;
  } catch {
    return -1;
  }
}
