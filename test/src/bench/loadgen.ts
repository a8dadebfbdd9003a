// Benchmark load generator, run as its own process by run.ts. It connects every user of its plan, then
// on `start` sends direct messages open-loop at a fixed offered rate (a timer, not waiting for answers),
// and measures, for every message, the time from its send to its arrival at the receiver (both ends are in
// this process, one clock). Each user has a site (the node or server it is connected to): a message is
// local when sender and receiver share a site, cross-node otherwise, and the two are reported apart. It
// counts what reached its receiver exactly once, late or twice, and reports; run.ts judges.
import { io, type Socket as IoSocket } from 'socket.io-client';
import WebSocket from 'ws';

export interface LoadPlan {
  readonly protocol: 'chat' | 'socketio';
  /** Per user: id, affinity group (users of a group share a site), site, and where it connects. */
  readonly users: readonly { id: string; group: number; site: number; url: string }[];
  /** Offered messages per second (all senders together). */
  readonly rate: number;
  readonly durationMs: number;
  /** Share of messages between users of one group (one site); the rest go to a user on another site. */
  readonly localShare: number;
  /** How long to wait after sending for stragglers before counting what is missing. */
  readonly drainMs: number;
  /** Connection waves of this many users at once (default 200). */
  readonly wave?: number;
}

export interface Percentiles {
  readonly count: number;
  readonly p50: number;
  readonly p99: number;
  readonly p999: number;
}

export interface LoadResult {
  readonly offered: number;
  readonly sent: number;
  readonly sentLocal: number;
  readonly sentCross: number;
  readonly delivered: number;
  readonly duplicates: number;
  readonly missing: number;
  readonly seconds: number;
  readonly deliveredPerSec: number;
  readonly p50: number;
  readonly p99: number;
  readonly p999: number;
  readonly local: Percentiles;
  readonly cross: Percentiles;
  /** Answers (acks or errors) that were errors, by code. */
  readonly errors: Record<string, number>;
}

interface Conn {
  send(to: string, cid: string, body: string): void;
  close(): void;
}

const pending = new Map<string, number>(); // message id -> send time
const crossIds = new Set<string>();
const seen = new Set<string>();
const latLocal: number[] = [];
const latCross: number[] = [];
const errors: Record<string, number> = {};
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
  (crossIds.has(id) ? latCross : latLocal).push(performance.now() - sentAt);
}

async function connectChat(url: string): Promise<Conn> {
  const ws = new WebSocket(url, ['chat.v1'], { perMessageDeflate: false });
  ws.on('message', (data: Buffer) => {
    const text = data.toString();
    if (text.startsWith('{"type":"message"')) received((JSON.parse(text) as { body: string }).body);
    else if (text.startsWith('{"type":"error"')) {
      const code = (JSON.parse(text) as { code?: string }).code ?? 'error';
      errors[code] = (errors[code] ?? 0) + 1;
    } else if (text.includes('"status":"offline"')) errors.offline = (errors.offline ?? 0) + 1;
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

function percentiles(values: number[]): Percentiles {
  const sorted = values.sort((a, b) => a - b);
  return {
    count: sorted.length,
    p50: percentile(sorted, 0.5),
    p99: percentile(sorted, 0.99),
    p999: percentile(sorted, 0.999),
  };
}

async function run(plan: LoadPlan): Promise<LoadResult> {
  const groups = new Map<number, string[]>();
  const otherSites = new Map<number, string[]>(); // site -> users on every other site
  const siteOf = new Map<string, number>();
  for (const u of plan.users) {
    const members = groups.get(u.group) ?? [];
    members.push(u.id);
    groups.set(u.group, members);
    siteOf.set(u.id, u.site);
  }
  for (const site of new Set(plan.users.map((u) => u.site)))
    otherSites.set(
      site,
      plan.users.filter((u) => u.site !== site).map((u) => u.id),
    );
  const conns = new Map<string, Conn>();
  // Connect in waves, so a handshake storm is not what is measured.
  let failed = 0;
  const wave = plan.wave ?? 200;
  for (let i = 0; i < plan.users.length; i += wave) {
    const batch = plan.users.slice(i, i + wave);
    const made = await Promise.allSettled(
      batch.map((u) => (plan.protocol === 'chat' ? connectChat(u.url) : connectSocketIo(u.url, u.id))),
    );
    batch.forEach((u, k) => {
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
  let sent = 0;
  let sentCross = 0;
  let seq = 0;
  const started = performance.now();
  const tickMs = 2;
  const total = Math.floor((plan.durationMs / 1000) * plan.rate);
  await new Promise<void>((resolve) => {
    const timer = setInterval(() => {
      const elapsed = performance.now() - started;
      const due = Math.min(Math.floor((elapsed / 1000) * plan.rate), total);
      for (; sent < due; sent++) {
        const from = users[seq % users.length];
        if (!from) break;
        const peers = groups.get(from.group) ?? [];
        const remote = otherSites.get(from.site) ?? [];
        let to: string | undefined;
        if ((Math.random() < plan.localShare && peers.length > 1) || remote.length === 0) {
          do to = peers[Math.floor(Math.random() * peers.length)];
          while (to === from.id && peers.length > 1);
        } else to = remote[Math.floor(Math.random() * remote.length)];
        if (!to || to === from.id) continue;
        const id = `m${seq++}`;
        pending.set(id, performance.now());
        if (siteOf.get(to) !== from.site) {
          crossIds.add(id);
          sentCross++;
        }
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
  while (pending.size > 0 && performance.now() < drainUntil) await new Promise((r) => setTimeout(r, 5));
  // Late duplicates: a short look after the last arrival.
  await new Promise((r) => setTimeout(r, 300));
  for (const c of conns.values()) c.close();
  const all = percentiles([...latLocal, ...latCross]);
  return {
    offered: total,
    sent,
    sentLocal: sent - sentCross,
    sentCross,
    delivered: seen.size,
    duplicates,
    missing: pending.size,
    seconds: sendSeconds,
    deliveredPerSec: sendSeconds > 0 ? seen.size / sendSeconds : 0,
    p50: all.p50,
    p99: all.p99,
    p999: all.p999,
    local: percentiles(latLocal),
    cross: percentiles(latCross),
    errors,
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
