// What the router hop costs: the same chat traffic straight to a node and through the router, in one
// run. A script, not a test:   pnpm bench:proxy [--messages 2000] [--pairs 20] [--burst 500]
// One node process (in-process bus: no Kafka, to isolate the proxy) and one router process; the load
// generator is this process. Latency: one message in flight at a time. Throughput: `pairs` senders each
// send `burst` messages as fast as the socket takes them, to a receiver on the same node.
import { parseArgs } from 'node:util';
import { startNode } from '../harness/node-process.js';
import { startRouter } from '../harness/router-process.js';
import { TestClient } from '../harness/ws-client.js';

const { values } = parseArgs({
  options: {
    messages: { type: 'string', default: '2000' },
    pairs: { type: 'string', default: '20' },
    burst: { type: 'string', default: '500' },
  },
});
const N = Number(values.messages);
const PAIRS = Number(values.pairs);
const BURST = Number(values.burst);

const cleanups: (() => unknown)[] = [];
const cleanup = { after: (fn: () => unknown) => cleanups.push(fn) };

const pct = (sorted: number[], p: number) =>
  sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? NaN;

async function latency(url: (user: string) => string, tag: string): Promise<number[]> {
  const sender = await TestClient.connect(cleanup, url(`${tag}-s`));
  const receiver = await TestClient.connect(cleanup, url(`${tag}-r`));
  const samples: number[] = [];
  for (let i = 0; i < N + 200; i++) {
    const body = `${tag}-${i}`;
    const arrived = new Promise<bigint>((resolve) => {
      const on = (data: Buffer) => {
        if (data.toString().includes(`"body":"${body}"`)) {
          receiver.ws.off('message', on);
          resolve(process.hrtime.bigint());
        }
      };
      receiver.ws.on('message', on);
    });
    const t0 = process.hrtime.bigint();
    sender.send({ type: 'send', cid: String(i), to: `${tag}-r`, body });
    const t1 = await arrived;
    if (i >= 200) samples.push(Number(t1 - t0) / 1e6); // the first 200 warm up
  }
  sender.frames.length = 0;
  receiver.frames.length = 0;
  await sender.close();
  await receiver.close();
  return samples.sort((a, b) => a - b);
}

async function throughput(url: (user: string) => string, tag: string): Promise<number> {
  const pairs = await Promise.all(
    Array.from({ length: PAIRS }, async (_, p) => ({
      sender: await TestClient.connect(cleanup, url(`${tag}-s${p}`)),
      receiver: await TestClient.connect(cleanup, url(`${tag}-r${p}`)),
      to: `${tag}-r${p}`,
    })),
  );
  let delivered = 0;
  const total = PAIRS * BURST;
  const done = new Promise<void>((resolve) => {
    for (const { receiver } of pairs) {
      receiver.ws.on('message', () => {
        if (++delivered === total) resolve();
      });
    }
  });
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < BURST; i++) {
    for (const { sender, to } of pairs)
      sender.ws.send(`{"type":"send","cid":"${i}","to":"${to}","body":"m${i}"}`);
  }
  await done;
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
  for (const { sender, receiver } of pairs) {
    if (receiver.frames.filter((f) => typeof f === 'object' && f.type === 'message').length !== BURST) {
      throw new Error('a receiver did not get every message exactly once');
    }
    await sender.close();
    await receiver.close();
  }
  return total / seconds;
}

async function main(): Promise<void> {
  const node = await startNode(cleanup, {
    nodeId: 'bench-node',
    env: { CHAT_LOG_LEVEL: 'warn', CHAT_NODE_RATE_PER_SEC: '100000', CHAT_NODE_RATE_BURST: '1000000' },
  });
  const router = await startRouter(cleanup, {
    CHAT_ROUTER_NODES: `bench-node=http://127.0.0.1:${node.port}`,
    CHAT_ROUTER_HANDSHAKE_RATE_PER_SEC: '100000',
    CHAT_LOG_LEVEL: 'warn',
  });
  for (let i = 0; (await router.members()).ringSize === 0; i++) {
    if (i > 100) throw new Error('node never joined the ring');
    await new Promise((r) => setTimeout(r, 50));
  }
  const direct = (u: string) => node.wsUrl(u);
  const routed = (u: string) => router.wsUrl(u);

  // Alternate to spread machine noise over both.
  const dLat = await latency(direct, 'd1');
  const rLat = await latency(routed, 'r1');
  const dTput = await throughput(direct, 'd2');
  const rTput = await throughput(routed, 'r2');

  console.log(`node ${process.version}; node, router and this load generator share the machine's cores`);
  console.log(`latency: ${N} messages one at a time; throughput: ${PAIRS} pairs x ${BURST} messages\n`);
  console.log('| Path | p50 ms | p99 ms | msgs/s |');
  console.log('| --- | --- | --- | --- |');
  console.log(
    `| straight to the node | ${pct(dLat, 50).toFixed(3)} | ${pct(dLat, 99).toFixed(3)} | ${dTput.toFixed(0)} |`,
  );
  console.log(
    `| through the router | ${pct(rLat, 50).toFixed(3)} | ${pct(rLat, 99).toFixed(3)} | ${rTput.toFixed(0)} |`,
  );
  console.log(
    `\nrouter / direct: p50 x${(pct(rLat, 50) / pct(dLat, 50)).toFixed(2)}, p99 x${(pct(rLat, 99) / pct(dLat, 99)).toFixed(2)}, throughput x${(rTput / dTput).toFixed(2)}`,
  );
}

try {
  await main();
} finally {
  for (const fn of cleanups.reverse()) await fn();
}
