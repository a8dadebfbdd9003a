// One message's latency, fast mode against durable mode, sender and receiver on the same node (the case
// durable mode changes: fast mode writes it at once, durable mode produces it with acks=all and writes it
// when the shard's owner reads it back). Real node processes, one real broker of its own, sequential sends
// (no load): send -> `message` at the receiver, and send -> ack.
//   node --conditions=source --import tsx test/src/bench/durable-latency.ts [--count 200]
import { once } from 'node:events';
import { parseArgs } from 'node:util';
import WebSocket from 'ws';
import { startNode } from '../harness/node-process.js';
import { KafkaBroker } from '../kafka/broker.js';

const { values } = parseArgs({ options: { count: { type: 'string', default: '200' } } });
const COUNT = Number(values.count);

const cleanups: (() => unknown)[] = [];
const scope = { after: (fn: () => unknown) => void cleanups.push(fn) };

function pct(sorted: number[], p: number): string {
  return (sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? NaN).toFixed(2);
}

async function measure(broker: KafkaBroker, mode: 'local-first' | 'durable'): Promise<string> {
  const node = await startNode(scope, {
    nodeId: `lat-${mode}`,
    env: {
      CHAT_KAFKA_BROKERS: broker.brokers,
      CHAT_KAFKA_TOPIC_PREFIX: `lat-${mode}-${Date.now()}`,
      CHAT_CLUSTER_SHARDS: '8',
      CHAT_NODE_DELIVERY_MODE: mode,
      CHAT_AUTH_MODE: 'off',
      CHAT_LOG_LEVEL: 'warn',
      // Sequential sends from one user: above the default per-user rate.
      CHAT_NODE_RATE_PER_SEC: '10000',
      CHAT_NODE_RATE_BURST: '10000',
    },
  });
  // Plain sockets and event listeners (the test client polls, which would hide a millisecond).
  const open = async (user: string) => {
    const ws = new WebSocket(node.wsUrl(user), ['chat.v1']);
    scope.after(() => ws.terminate());
    await once(ws, 'open');
    return ws;
  };
  const alice = await open('lat-alice');
  const bob = await open('lat-bob');
  const waitFor = (ws: WebSocket, match: (f: Record<string, unknown>) => boolean) =>
    new Promise<number>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`${mode}: no matching frame in 10 s`)), 10_000);
      const onMessage = (data: Buffer) => {
        const frame = JSON.parse(data.toString()) as Record<string, unknown>;
        if (!match(frame)) return;
        clearTimeout(timer);
        ws.off('message', onMessage);
        resolve(performance.now());
      };
      ws.on('message', onMessage);
    });
  const delivered: number[] = [];
  const acked: number[] = [];
  for (let i = 0; i < COUNT + 20; i++) {
    const body = `m${i}`;
    const gotMessage = waitFor(bob, (f) => f.type === 'message' && f.body === body);
    const gotAck = waitFor(alice, (f) => f.cid === `c${i}`);
    const t0 = performance.now();
    alice.send(JSON.stringify({ type: 'send', cid: `c${i}`, to: 'lat-bob', body }));
    const [d, a] = await Promise.all([gotMessage, gotAck]);
    if (i >= 20) {
      delivered.push(d - t0);
      acked.push(a - t0);
    }
  }
  delivered.sort((x, y) => x - y);
  acked.sort((x, y) => x - y);
  return `| ${mode} | ${COUNT} | ${pct(delivered, 50)} | ${pct(delivered, 99)} | ${pct(acked, 50)} | ${pct(acked, 99)} |`;
}

const broker = await KafkaBroker.start({ log: (m) => process.stderr.write(`${m}\n`) });
try {
  const rows = [await measure(broker, 'local-first'), await measure(broker, 'durable')];
  console.log('| Mode | Messages | Delivered p50 ms | p99 ms | Acked p50 ms | p99 ms |');
  console.log('| --- | --- | --- | --- | --- | --- |');
  for (const row of rows) console.log(row);
} finally {
  for (const fn of cleanups.reverse()) await fn();
  await broker.dispose();
}
