// `node --conditions=source --import tsx test/src/bench/router-memory.ts [--idle 2000]`: the router's
// idle memory per proxied connection alone, with the method of `pnpm bench` phase 5 (a fresh router
// under the inspector, two forced GCs, median RSS and the V8 heap in use, before and after) but without
// Kafka: static membership to an in-process echo upstream (test/src/harness/fake-upstream.ts). Prints one
// line per figure; for checking a change to the router's per-connection state in a minute.
import { setTimeout as delay } from 'node:timers/promises';
import { parseArgs } from 'node:util';
import WebSocket from 'ws';
import { FakeUpstream } from '../harness/fake-upstream.js';
import { forkService } from '../harness/node-process.js';
import { freePort } from '../net.js';
import { pollUntil } from '../poll.js';
import { Inspector } from './inspector.js';

const { values } = parseArgs({ options: { idle: { type: 'string', default: '2000' } } });
const IDLE = Number(values.idle);

const cleanups: (() => unknown)[] = [];
const cleanup = { after: (fn: () => unknown) => cleanups.push(fn) };

async function main(): Promise<void> {
  const fake = await FakeUpstream.start(cleanup);
  const inspectPort = await freePort();
  const router = await forkService(
    cleanup,
    'router-mem',
    'router/src/main.ts',
    {
      CHAT_ROUTER_PORT: '0',
      CHAT_ROUTER_ADMIN_PORT: '0',
      CHAT_ROUTER_NODES: `fake=${fake.url}`,
      CHAT_LOG_LEVEL: 'warn',
      CHAT_ROUTER_HANDSHAKE_RATE_PER_SEC: '1000000',
      CHAT_ROUTER_MAX_CONNECTIONS: String(IDLE * 2),
    },
    60_000,
    [`--inspect=127.0.0.1:${inspectPort}`],
  );
  const pid = router.child.pid;
  const port = Number(router.ready.port);
  const inspector = await Inspector.attach(inspectPort);
  cleanups.push(() => inspector.close());
  // Warm up: one connection opened and closed, so that code paths and pools are in place before the baseline.
  const warm = new WebSocket(`ws://127.0.0.1:${port}/chat/ok-warm`);
  await new Promise((resolve, reject) => warm.once('open', resolve).once('error', reject));
  warm.close();
  await pollUntil(() => fake.sockets.size === 0, { what: 'warm-up connection closed' });
  const before = await inspector.steady(pid);
  const clients: WebSocket[] = [];
  for (let i = 0; i < IDLE; i += 200) {
    const wave = Array.from({ length: Math.min(200, IDLE - i) }, (_, j) => {
      const ws = new WebSocket(`ws://127.0.0.1:${port}/chat/ok-idle${i + j}`);
      clients.push(ws);
      return new Promise((resolve, reject) => ws.once('open', resolve).once('error', reject));
    });
    await Promise.all(wave);
  }
  await delay(2000);
  const after = await inspector.steady(pid);
  const kib = (x: number) => (x / 1024).toFixed(1);
  console.log(`router idle memory, ${IDLE} connections through the router to an echo upstream:`);
  console.log(
    `  RSS  ${kib(before.rss)} -> ${kib(after.rss)} KiB: ${kib((after.rss - before.rss) / IDLE)} KiB per connection`,
  );
  console.log(
    `  heap ${kib(before.heap)} -> ${kib(after.heap)} KiB: ${kib((after.heap - before.heap) / IDLE)} KiB per connection`,
  );
  for (const ws of clients) ws.terminate();
}

try {
  await main();
} finally {
  for (const fn of cleanups.reverse()) {
    try {
      await fn();
    } catch {
      // Best effort: the router is killed either way.
    }
  }
}
