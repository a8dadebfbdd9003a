// Latency of one message, sender's socket to receiver's socket, on this machine: two users on one node
// (local-first, no Kafka) versus users on two nodes (through Kafka, acks=all). A script, not a test:
//   pnpm bench:latency [--messages 2000] [--warmup 300]
// Starts its own Kafka broker (or uses CHAT_KAFKA_BROKERS) and two node processes; the load generator is
// this process. One message in flight at a time, so the figures are latency, not queueing.
import { parseArgs } from 'node:util';
import { startNode } from '../harness/node-process.js';
import { TestClient } from '../harness/ws-client.js';
import { KafkaBroker } from '../kafka/broker.js';
import { kafkaVersion } from '../kafka/maven.js';

const { values } = parseArgs({
  options: { messages: { type: 'string', default: '2000' }, warmup: { type: 'string', default: '300' } },
});
const N = Number(values.messages);
const WARMUP = Number(values.warmup);

const cleanups: (() => unknown)[] = [];
const cleanup = { after: (fn: () => unknown) => cleanups.push(fn) };

async function main(): Promise<void> {
  let brokers = process.env.CHAT_KAFKA_BROKERS ?? '';
  if (!brokers) {
    const broker = await KafkaBroker.start();
    cleanup.after(() => broker.dispose());
    brokers = broker.brokers;
  }
  const env = {
    CHAT_KAFKA_BROKERS: brokers,
    CHAT_KAFKA_TOPIC_PREFIX: `bench-${Date.now()}`,
    CHAT_CLUSTER_SHARDS: '6',
    // A benchmark measures the data path, not the per-connection rate limit.
    CHAT_NODE_RATE_PER_SEC: '100000',
    CHAT_NODE_RATE_BURST: '1000000',
    CHAT_LOG_LEVEL: 'warn',
  };
  const n1 = await startNode(cleanup, { nodeId: 'bench-1', env });
  const n2 = await startNode(cleanup, { nodeId: 'bench-2', env });
  const sender = await TestClient.connect(cleanup, n1.wsUrl('sender'));
  const local = await TestClient.connect(cleanup, n1.wsUrl('local'));
  const remote = await TestClient.connect(cleanup, n2.wsUrl('remote'));
  // Wait until node 1 sees `remote` on node 2.
  for (let i = 0; (await n1.presence('remote')).remoteNodes.length === 0; i++) {
    if (i > 200) throw new Error('presence of remote never arrived');
    await new Promise((r) => setTimeout(r, 50));
  }

  async function measure(receiver: TestClient, to: string, count: number): Promise<number[]> {
    const samples: number[] = [];
    for (let i = 0; i < count; i++) {
      const body = `${to}-${i}-${Math.random()}`;
      const arrived = new Promise<bigint>((resolve) => {
        const onMessage = (data: Buffer) => {
          if (data.toString().includes(body)) {
            receiver.ws.off('message', onMessage);
            resolve(process.hrtime.bigint());
          }
        };
        receiver.ws.on('message', onMessage);
      });
      const sent = process.hrtime.bigint();
      sender.send({ type: 'send', cid: String(i), to, body });
      samples.push(Number((await arrived) - sent) / 1e6);
    }
    sender.frames.length = 0;
    receiver.frames.length = 0;
    return samples;
  }

  const pct = (sorted: number[], p: number) =>
    sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? NaN;
  const rows: string[] = [];
  const results: Record<string, { p50: number; p99: number }> = {};
  for (const [name, receiver, to] of [
    ['local (same node, no Kafka)', local, 'local'],
    ['cross-node (via Kafka)', remote, 'remote'],
  ] as const) {
    await measure(receiver, to, WARMUP);
    const sorted = (await measure(receiver, to, N)).sort((a, b) => a - b);
    const mean = sorted.reduce((a, b) => a + b, 0) / sorted.length;
    results[to] = { p50: pct(sorted, 50), p99: pct(sorted, 99) };
    rows.push(
      `| ${name} | ${N} | ${pct(sorted, 50).toFixed(3)} | ${pct(sorted, 99).toFixed(3)} | ${(sorted.at(-1) ?? NaN).toFixed(3)} | ${mean.toFixed(3)} |`,
    );
  }
  const busProduced = await n1.metric('chat_node_bus_records_produced_total', { kind: 'message' });
  console.log(
    `Apache Kafka ${await kafkaVersion()}, node ${process.version}, 2 node processes + broker + this load generator sharing the machine's cores`,
  );
  console.log(`One message in flight at a time; ${WARMUP} warm-up messages per path not counted.\n`);
  console.log('| Path | Messages | p50 ms | p99 ms | max ms | mean ms |');
  console.log('| --- | --- | --- | --- | --- | --- |');
  for (const row of rows) console.log(row);
  const { local: l, remote: r } = results;
  if (l && r)
    console.log(
      `\ncross-node / local: p50 ×${(r.p50 / l.p50).toFixed(1)}, p99 ×${(r.p99 / l.p99).toFixed(1)}`,
    );
  console.log(
    `Kafka records produced by node 1 for messages: ${busProduced} (= cross-node messages sent, local ones produce none)`,
  );
}

try {
  await main();
} finally {
  for (const fn of cleanups.reverse()) await fn();
}
