// Benchmark load generator, run as its own process by run.ts. It connects every user of its plan, then
// on `start` sends direct messages open-loop at a fixed offered rate (a timer, not waiting for answers),
// and measures, for every message, the time from its send to its arrival at the receiver (both ends are in
// this process, one clock). It checks that every message reached its receiver exactly once and reports.
import { io, type Socket as IoSocket } from 'socket.io-client';
import WebSocket from 'ws';

export interface LoadPlan {
  readonly protocol: 'chat' | 'socketio';
  /** Per user: id, affinity group, and where it connects. */
  readonly users: readonly { id: string; group: number; url: string }[];
  /** Offered messages per second (all senders together). */
  readonly rate: number;
  readonly durationMs: number;
  /** Share of messages between users of one group (placed on one node); the rest cross groups. */
  readonly localShare: number;
  /** How long to wait after sending for stragglers before counting what is missing. */
  readonly drainMs: number;
}

export interface LoadResult {
  readonly offered: number;
  readonly sent: number;
  readonly delivered: number;
  readonly duplicates: number;
  readonly missing: number;
  readonly seconds: number;
  readonly deliveredPerSec: number;
  readonly p50: number;
  readonly p99: number;
  readonly p999: number;
}

interface Conn {
  send(to: string, cid: string, body: string): void;
  close(): void;
}

const pending = new Map<string, number>(); // message id -> send time
const seen = new Set<string>();
const latencies: number[] = [];
let duplicates = 0;

function received(body: string): void {
  const id = body.slice(0, body.indexOf('|'));
  if (seen.has(id)) {
    duplicates++;
    return;
  }
  const sentAt = pending.get(id);
  if (sentAt === undefined) return;
  seen.add(id);
  pending.delete(id);
  latencies.push(performance.now() - sentAt);
}

async function connectChat(url: string): Promise<Conn> {
  const ws = new WebSocket(url, ['chat.v1'], { perMessageDeflate: false });
  ws.on('message', (data: Buffer) => {
    const text = data.toString();
    if (text.startsWith('{"type":"message"')) received((JSON.parse(text) as { body: string }).body);
  });
  ws.on('error', () => undefined);
  await new Promise<void>((resolve, reject) => {
    ws.once('open', () => resolve());
    ws.once('error', reject);
  });
  return {
    send: (to, cid, body) => ws.send(`{"type":"send","cid":"${cid}","to":"${to}","body":"${body}"}`),
    close: () => ws.terminate(),
  };
}

async function connectSocketIo(url: string, user: string): Promise<Conn> {
  const socket: IoSocket = io(url, { transports: ['websocket'], query: { user }, reconnection: false });
  socket.on('message', (m: { body: string }) => received(m.body));
  await new Promise<void>((resolve, reject) => {
    socket.once('connect', () => resolve());
    socket.once('connect_error', reject);
  });
  return {
    send: (to, cid, body) => socket.emit('send', { cid, to, body }),
    close: () => socket.disconnect(),
  };
}

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))] ?? Number.NaN;
}

async function run(plan: LoadPlan): Promise<LoadResult> {
  const groups = new Map<number, string[]>();
  for (const u of plan.users) groups.set(u.group, [...(groups.get(u.group) ?? []), u.id]);
  const conns = new Map<string, Conn>();
  // Connect in waves, so a handshake storm is not what is measured.
  let failed = 0;
  for (let i = 0; i < plan.users.length; i += 200) {
    const wave = plan.users.slice(i, i + 200);
    const made = await Promise.allSettled(
      wave.map((u) => (plan.protocol === 'chat' ? connectChat(u.url) : connectSocketIo(u.url, u.id))),
    );
    wave.forEach((u, k) => {
      const r = made[k];
      if (r?.status === 'fulfilled') conns.set(u.id, r.value);
      else failed++;
    });
  }
  // A measured run needs every user; an idle-memory run (rate 0) reports how many it got.
  if (failed > 0 && plan.rate > 0)
    throw new Error(`${failed} of ${plan.users.length} users could not connect`);
  process.send?.({ type: 'connected', connected: conns.size });
  await new Promise<void>((resolve) => process.once('message', () => resolve()));

  const users = plan.users;
  const groupIds = [...groups.keys()];
  let sent = 0;
  let seq = 0;
  const started = performance.now();
  const tickMs = 5;
  await new Promise<void>((resolve) => {
    const timer = setInterval(() => {
      const elapsed = performance.now() - started;
      const due = Math.min(
        Math.floor((elapsed / 1000) * plan.rate),
        Math.floor((plan.durationMs / 1000) * plan.rate),
      );
      for (; sent < due; sent++) {
        const from = users[seq % users.length];
        if (!from) break;
        const peers = groups.get(from.group) ?? [];
        let to: string | undefined;
        if (Math.random() < plan.localShare && peers.length > 1) {
          do to = peers[Math.floor(Math.random() * peers.length)];
          while (to === from.id);
        } else {
          const other = groupIds[Math.floor(Math.random() * groupIds.length)] ?? 0;
          const pool = groups.get(other === from.group ? (other + 1) % groupIds.length : other) ?? [];
          to = pool[Math.floor(Math.random() * pool.length)];
        }
        if (!to) continue;
        const id = `m${seq++}`;
        pending.set(id, performance.now());
        conns.get(from.id)?.send(to, id, `${id}|x`);
      }
      if (elapsed >= plan.durationMs) {
        clearInterval(timer);
        resolve();
      }
    }, tickMs);
  });
  const sendSeconds = (performance.now() - started) / 1000;
  const drainUntil = performance.now() + plan.drainMs;
  const drainPollMs = 5;
  while (pending.size > 0 && performance.now() < drainUntil)
    await new Promise((r) => setTimeout(r, drainPollMs));
  for (const c of conns.values()) c.close();
  const sorted = latencies.sort((a, b) => a - b);
  return {
    offered: Math.round((plan.durationMs / 1000) * plan.rate),
    sent,
    delivered: seen.size,
    duplicates,
    missing: pending.size,
    seconds: sendSeconds,
    deliveredPerSec: sendSeconds > 0 ? seen.size / sendSeconds : 0,
    p50: percentile(sorted, 0.5),
    p99: percentile(sorted, 0.99),
    p999: percentile(sorted, 0.999),
  };
}

process.once('message', (plan: LoadPlan) => {
  run(plan).then(
    (result) => {
      process.send?.({ type: 'result', result });
      process.exit(0);
    },
    (err: unknown) => {
      process.send?.({ type: 'error', error: String(err) });
      process.exit(1);
    },
  );
});
