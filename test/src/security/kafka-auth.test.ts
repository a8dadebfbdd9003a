// Kafka authentication (issue 15, item 3): against a real broker whose only listener is SASL_PLAINTEXT,
// a node logging in with PLAIN (password from a file) and a router with SCRAM-SHA-256 work together; a
// wrong password ends start-up at once with exit 78 and one line naming the cause, not after the start
// timeout of retries.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { TEST_CLUSTER_SECRET, startNode } from '../harness/node-process.js';
import { startRouter } from '../harness/router-process.js';
import { useOwnKafka, type KafkaFixture } from '../kafka/harness.js';
import { repoRoot } from '../paths.js';
import { pollUntil } from '../poll.js';

const USER = 'chat';
const PASSWORD = 'chat-password-for-the-sasl-test';

/** Runs an entry point to its exit; resolves with the code, stderr and how long it took. */
async function run(entry: string, env: Record<string, string>) {
  const started = performance.now();
  const proc = spawn(process.execPath, ['--conditions=source', '--import', 'tsx', join(repoRoot, entry)], {
    cwd: repoRoot,
    env: { PATH: process.env.PATH ?? '', CHAT_LOG_LEVEL: 'silent', CHAT_AUTH_MODE: 'off', ...env },
  });
  let stderr = '';
  let stdout = '';
  proc.stderr.on('data', (b: Buffer) => (stderr += b.toString()));
  proc.stdout.on('data', (b: Buffer) => (stdout += b.toString()));
  const code = await new Promise<number | null>((resolve) => proc.once('exit', resolve));
  return { code, stderr, stdout, ms: performance.now() - started };
}

test('Kafka without a cluster secret, or with incomplete credentials, refuses to start (exit 78, one line each)', async () => {
  // Refused before any connection: the broker address is never dialled.
  const kafkaEnv = { CHAT_KAFKA_BROKERS: '127.0.0.1:9', CHAT_CLUSTER_SECRET: '' };
  const node = await run('node/src/main.ts', { ...kafkaEnv, CHAT_NODE_PORT: '0' });
  const router = await run('router/src/main.ts', {
    ...kafkaEnv,
    CHAT_ROUTER_PORT: '0',
    CHAT_ROUTER_ADMIN_PORT: '0',
  });
  for (const result of [node, router]) {
    assert.equal(result.code, 78, result.stderr);
    assert.equal(result.stderr.trim().split('\n').length, 1, result.stderr);
    assert.match(
      result.stderr,
      /CONFIG_ERR_INVALID: CHAT_CLUSTER_SECRET \(or CHAT_INTERNAL_TOKEN\) is required/,
    );
  }
  const incomplete = {
    CHAT_KAFKA_BROKERS: '127.0.0.1:9',
    CHAT_CLUSTER_SECRET: TEST_CLUSTER_SECRET,
    CHAT_KAFKA_SASL_MECHANISM: 'scram-sha-512',
    CHAT_KAFKA_SASL_PASSWORD_FILE: '/nonexistent/kafka-password',
  };
  const nodeBad = await run('node/src/main.ts', { ...incomplete, CHAT_NODE_PORT: '0' });
  const routerBad = await run('router/src/main.ts', {
    ...incomplete,
    CHAT_ROUTER_PORT: '0',
    CHAT_ROUTER_ADMIN_PORT: '0',
  });
  for (const result of [nodeBad, routerBad]) {
    assert.equal(result.code, 78, result.stderr);
    assert.match(result.stderr, /CHAT_KAFKA_SASL_USERNAME is required/);
    assert.match(
      result.stderr,
      /CHAT_KAFKA_SASL_PASSWORD_FILE: cannot read \/nonexistent\/kafka-password \(ENOENT\)/,
    );
  }
  // Development only: permissive mode runs unsigned and says so.
  const dev = await run('node/src/main.ts', {
    ...kafkaEnv,
    CHAT_CLUSTER_RECORD_AUTH: 'permissive',
    CHAT_NODE_PORT: '0',
    CHAT_NODE_BUS_START_TIMEOUT_MS: '1000',
    CHAT_LOG_LEVEL: 'warn',
  });
  assert.equal(dev.code, 1, 'it goes on to Kafka (none there)');
  assert.match(dev.stdout, /"level":"warn".*directory records are not signed/);
});

describe('Kafka with SASL', () => {
  const cleanups: (() => unknown)[] = [];
  const cleanup = { after: (fn: () => unknown) => cleanups.push(fn) };
  let kafka: KafkaFixture;
  let passwordFile: string;
  let base: Record<string, string>;

  before(async () => {
    kafka = await useOwnKafka(cleanup, { sasl: { users: { [USER]: PASSWORD } } });
    const dir = await mkdtemp(join(tmpdir(), 'chat-sasl-'));
    passwordFile = join(dir, 'kafka-password');
    await writeFile(passwordFile, `${PASSWORD}\n`, { mode: 0o600 });
    base = {
      CHAT_KAFKA_BROKERS: kafka.brokers,
      CHAT_KAFKA_TOPIC_PREFIX: kafka.uniqueName('sasl'),
      CHAT_CLUSTER_SHARDS: '4',
      CHAT_CLUSTER_SECRET: TEST_CLUSTER_SECRET,
      CHAT_KAFKA_SASL_USERNAME: USER,
    };
  });
  after(async () => {
    for (const fn of cleanups.reverse()) await fn();
  });

  test('a node with PLAIN (password file) and a router with SCRAM-SHA-256 work together', async (t) => {
    const node = await startNode(t, {
      nodeId: 'sasl-n1',
      env: { ...base, CHAT_KAFKA_SASL_MECHANISM: 'plain', CHAT_KAFKA_SASL_PASSWORD_FILE: passwordFile },
    });
    assert.equal(await node.ready(), true);
    const router = await startRouter(t, {
      ...base,
      CHAT_KAFKA_SASL_MECHANISM: 'scram-sha-256',
      CHAT_KAFKA_SASL_PASSWORD: PASSWORD,
    });
    await pollUntil(
      async () => (await router.members()).members.some((m) => m.id === 'sasl-n1' && m.inRing),
      {
        timeoutMs: 20_000,
        what: 'the node in the router ring over SASL',
      },
    );
  });

  test('the broker takes no client without credentials (a node without SASL settings never gets ready)', async () => {
    const result = await run('node/src/main.ts', {
      ...base,
      CHAT_KAFKA_SASL_USERNAME: '',
      CHAT_NODE_ID: 'sasl-none',
      CHAT_NODE_PORT: '0',
      CHAT_NODE_BUS_START_TIMEOUT_MS: '2000',
    });
    assert.equal(result.code, 1, result.stderr);
  });

  test('a wrong password: exit 78 at once with one line saying Kafka refused the client (node and router)', async (t) => {
    const wrong = { ...base, CHAT_KAFKA_SASL_MECHANISM: 'scram-sha-512', CHAT_KAFKA_SASL_PASSWORD: 'wrong' };
    const node = await run('node/src/main.ts', { ...wrong, CHAT_NODE_ID: 'sasl-bad', CHAT_NODE_PORT: '0' });
    const router = await run('router/src/main.ts', {
      ...wrong,
      CHAT_ROUTER_PORT: '0',
      CHAT_ROUTER_ADMIN_PORT: '0',
    });
    for (const [name, result] of [
      ['node', node],
      ['router', router],
    ] as const) {
      assert.equal(result.code, 78, `${name}: ${result.stderr}`);
      const lines = result.stderr.trim().split('\n');
      assert.equal(lines.length, 1, `${name}: one line: ${result.stderr}`);
      assert.match(
        lines[0] ?? '',
        /CONFIG_ERR_INVALID: Kafka refused this client: .*(authentication|username or password)/i,
      );
      assert.doesNotMatch(result.stderr, /wrong/, 'the password is not echoed');
      t.diagnostic(`${name}: exit ${result.code} after ${Math.round(result.ms)} ms: ${lines[0] ?? ''}`);
      // Not the 60 s start timeout of retries: the refusal is final.
      assert.ok(result.ms < 20_000, `${name} took ${Math.round(result.ms)} ms`);
    }
  });
});
