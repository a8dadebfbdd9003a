// CHAT_ROUTER_TRUSTED_PROXIES (issue 14) with real router and node processes on a real broker: 200 users
// behind one trusted "load balancer" (127.0.0.1, each handshake with its user's X-Forwarded-For) are not
// throttled by the per-address handshake limit, while 200 handshakes from one untrusted address
// (127.0.0.2) that forge an X-Forwarded-For each are.
import assert from 'node:assert/strict';
import { connect } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { startNode } from '../harness/node-process.js';
import { upgradeRequest } from '../harness/raw-http.js';
import { startRouter, type RouterProcess } from '../harness/router-process.js';
import { useKafka } from '../kafka/harness.js';
import { pollUntil } from '../poll.js';

/** Handshakes per second one client address may make (burst twice that). */
const RATE = 5;

/** One upgrade from `localAddress` with `headers`; resolves with the answer's status once it arrives. */
function handshake(port: number, localAddress: string, path: string, headers: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: '127.0.0.1', port, localAddress });
    let head = '';
    socket.on('error', reject);
    socket.on('data', (chunk: Buffer) => {
      head += chunk.toString('latin1');
      if (!head.includes('\r\n')) return;
      socket.destroy();
      resolve(Number(head.split(' ')[1]));
    });
    socket.once('close', () => reject(new Error(`closed without an answer: ${JSON.stringify(head)}`)));
    socket.write(upgradeRequest(path, headers));
  });
}

/** `count` handshakes, `batch` at a time; the statuses in order. */
async function many(count: number, batch: number, one: (i: number) => Promise<number>): Promise<number[]> {
  const statuses: number[] = [];
  for (let i = 0; i < count; i += batch) {
    const size = Math.min(batch, count - i);
    statuses.push(...(await Promise.all(Array.from({ length: size }, (_, k) => one(i + k)))));
  }
  return statuses;
}

const tally = (statuses: number[]) =>
  statuses.reduce<Record<number, number>>((acc, s) => ({ ...acc, [s]: (acc[s] ?? 0) + 1 }), {});

describe('trusted proxies through a real router and node', () => {
  const cleanups: (() => unknown)[] = [];
  const cleanup = { after: (fn: () => unknown) => cleanups.push(fn) };
  let router: RouterProcess;

  before(async () => {
    const kafka = await useKafka(cleanup);
    const env = {
      CHAT_KAFKA_BROKERS: kafka.brokers,
      CHAT_KAFKA_TOPIC_PREFIX: kafka.uniqueName('proxies'),
      CHAT_CLUSTER_SHARDS: '2',
    };
    const node = await startNode(cleanup, { nodeId: 'p1', env });
    router = await startRouter(cleanup, {
      ...env,
      CHAT_ROUTER_NODES: `p1=http://127.0.0.1:${node.port}`,
      CHAT_ROUTER_HANDSHAKE_RATE_PER_SEC: String(RATE),
      // The load balancer is 127.0.0.1 (an address, IPv4-mapped IPv6 matched too); 127.0.0.2 is not.
      CHAT_ROUTER_TRUSTED_PROXIES: '127.0.0.1/32, fd00::/8',
    });
    await pollUntil(async () => (await router.members()).ringSize === 1, { what: 'the node in the ring' });
  });
  after(async () => {
    for (const fn of cleanups.reverse()) await fn();
  });

  test('200 users behind the trusted proxy are not throttled; 200 forged from an untrusted address are', async () => {
    // Users 10.1.0.0-10.1.0.199 as the balancer reports them; each also tries to spoof (prepends an entry).
    const behind = await many(200, 50, (i) =>
      handshake(
        router.port,
        '127.0.0.1',
        `/chat/lb-user-${i}`,
        `X-Forwarded-For: 6.6.6.6, 10.1.${i >> 8}.${i & 0xff}\r\n`,
      ),
    );
    assert.deepEqual(tally(behind), { 101: 200 }, 'every user behind the balancer connected');
    assert.equal(await router.metric('chat_router_upgrades_total', { result: 'rate_limited' }), 0);
    assert.equal(await router.metric('chat_router_client_addresses_total', { source: 'forwarded' }), 200);

    // The same from 127.0.0.2, which no one trusts: its forged X-Forwarded-For is ignored, so all 200
    // share its budget (burst 2 × RATE, then RATE per second).
    const forged = await many(200, 50, (i) =>
      handshake(
        router.port,
        '127.0.0.2',
        `/chat/direct-user-${i}`,
        `X-Forwarded-For: 10.2.${i >> 8}.${i & 0xff}\r\n`,
      ),
    );
    const seen = tally(forged);
    assert.deepEqual(Object.keys(seen).sort(), ['101', '429'], JSON.stringify(seen));
    assert.ok((seen[429] ?? 0) >= 100, `most refused for the rate: ${JSON.stringify(seen)}`);
    assert.equal(
      await router.metric('chat_router_upgrades_total', { result: 'rate_limited' }),
      seen[429],
      'each refusal counted',
    );
    assert.equal(
      await router.metric('chat_router_client_addresses_total', { source: 'peer' }),
      200,
      'the untrusted peer’s header was not believed',
    );
  });
});
