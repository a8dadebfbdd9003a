// Kafka authentication (issue 15, item 3): against a real broker whose only listener is SASL_PLAINTEXT,
// a node logging in with PLAIN (password from a file) and a router with SCRAM-SHA-256 work together; a
// wrong password ends start-up at once with exit 78 and one line naming the cause, not after the start
// timeout of retries. Against a SASL_SSL broker (certificates made with openssl), SCRAM-SHA-512 over TLS
// with the CA file works and a client that does not trust the CA never gets ready.
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
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
    cleanup.after(() => rm(dir, { recursive: true, force: true }));
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

/** A CA and a broker certificate for 127.0.0.1 signed by it (openssl), in `dir`. */
function makeCertificates(dir: string): { caFile: string; keystoreFile: string } {
  const openssl = (...args: string[]) => {
    const r = spawnSync('openssl', args, { cwd: dir, encoding: 'utf8' });
    assert.equal(r.status, 0, `openssl ${args[0] ?? ''}: ${r.stderr}`);
  };
  openssl(
    'req',
    '-x509',
    '-newkey',
    'rsa:2048',
    '-nodes',
    '-keyout',
    'ca.key',
    '-out',
    'ca.pem',
    '-days',
    '1',
    '-subj',
    '/CN=chat-test-ca',
  );
  openssl(
    'req',
    '-newkey',
    'rsa:2048',
    '-nodes',
    '-keyout',
    'broker.key',
    '-out',
    'broker.csr',
    '-subj',
    '/CN=127.0.0.1',
  );
  spawnSync('sh', ['-c', 'printf "subjectAltName=IP:127.0.0.1\\n" > san.ext'], { cwd: dir });
  openssl(
    'x509',
    '-req',
    '-in',
    'broker.csr',
    '-CA',
    'ca.pem',
    '-CAkey',
    'ca.key',
    '-CAcreateserial',
    '-out',
    'broker.pem',
    '-days',
    '1',
    '-extfile',
    'san.ext',
  );
  // Kafka's PEM keystore: the (PKCS#8, unencrypted) key and the certificate in one file.
  spawnSync('sh', ['-c', 'cat broker.key broker.pem > keystore.pem'], { cwd: dir });
  return { caFile: join(dir, 'ca.pem'), keystoreFile: join(dir, 'keystore.pem') };
}

describe('Kafka with SASL over TLS', () => {
  const cleanups: (() => unknown)[] = [];
  const cleanup = { after: (fn: () => unknown) => cleanups.push(fn) };
  let base: Record<string, string>;
  let caFile: string;

  before(async () => {
    const dir = await mkdtemp(join(tmpdir(), 'chat-tls-'));
    cleanup.after(() => rm(dir, { recursive: true, force: true }));
    const certs = makeCertificates(dir);
    caFile = certs.caFile;
    const kafka = await useOwnKafka(cleanup, { sasl: { users: { [USER]: PASSWORD } }, tls: certs });
    base = {
      CHAT_KAFKA_BROKERS: kafka.brokers,
      CHAT_KAFKA_TOPIC_PREFIX: kafka.uniqueName('tls'),
      CHAT_CLUSTER_SHARDS: '4',
      CHAT_CLUSTER_SECRET: TEST_CLUSTER_SECRET,
      CHAT_KAFKA_SASL_MECHANISM: 'scram-sha-512',
      CHAT_KAFKA_SASL_USERNAME: USER,
      CHAT_KAFKA_SASL_PASSWORD: PASSWORD,
    };
  });
  after(async () => {
    for (const fn of cleanups.reverse()) await fn();
  });

  test('a node that checks the broker against CHAT_KAFKA_TLS_CA_FILE (SCRAM-SHA-512 over TLS) gets ready', async (t) => {
    const node = await startNode(t, { nodeId: 'tls-n1', env: { ...base, CHAT_KAFKA_TLS_CA_FILE: caFile } });
    assert.equal(await node.ready(), true);
  });

  test('a node that does not trust the broker’s CA never gets ready (certificates are checked)', async () => {
    const result = await run('node/src/main.ts', {
      ...base,
      CHAT_KAFKA_TLS: 'true',
      CHAT_NODE_ID: 'tls-untrusting',
      CHAT_NODE_PORT: '0',
      CHAT_NODE_BUS_START_TIMEOUT_MS: '2000',
      CHAT_LOG_LEVEL: 'info',
    });
    assert.equal(result.code, 1, result.stderr);
    assert.match(
      result.stdout,
      /self[- ]signed certificate|unable to verify/i,
      'refused for the certificate',
    );
  });
});
