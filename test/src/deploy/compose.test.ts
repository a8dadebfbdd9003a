// deploy/docker-compose.yml fails safe: no secret is written in it (each comes from the environment, and
// compose stops with the variable's name when one is missing), deploy/new-env.sh writes fresh ones, the
// published ports listen on loopback, and the chat services run read-only without capabilities.
// No Docker here: compose's interpolation is applied by manifests.ts' `interpolate`.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, statSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { parse } from 'yaml';
import { repoRoot } from '../paths.js';
import {
  directoryAuthFromConfig,
  kafkaConnectionOptions,
  loadConfig,
  nodeConfigSchema,
  routerConfigSchema,
} from '@chat/shared';
import { checkEnv, interpolate, read, type Env } from './manifests.js';

interface Service {
  image?: string;
  environment?: Record<string, string | number>;
  command?: string[];
  ports?: string[];
  volumes?: string[];
  configs?: { source: string; target: string }[];
  read_only?: boolean;
  cap_drop?: string[];
  security_opt?: string[];
}
interface Compose {
  services: Record<string, Service>;
  configs?: Record<string, { environment?: string; file?: string }>;
}

const RAW = read('deploy/docker-compose.yml');
/** Every variable the file requires (`${NAME:?message}`). */
const REQUIRED = [...RAW.matchAll(/\$\{([A-Z_][A-Z0-9_]*):\?/g)].map((m) => m[1] ?? '');
const SECRETS = {
  CHAT_AUTH_HS256_SECRET: 's'.repeat(40),
  CHAT_INTERNAL_TOKEN: 'internal-token-for-the-test',
  CHAT_ROUTER_ADMIN_TOKEN: 'admin-token-for-the-test',
  GRAFANA_ADMIN_PASSWORD: 'grafana-password-for-the-test',
  CHAT_CLUSTER_SECRET: 'cluster-secret-for-the-compose-test-0123',
  CHAT_KAFKA_SASL_PASSWORD: 'kafka-password-for-the-test',
  KAFKA_ADMIN_PASSWORD: 'kafka-admin-password-for-the-test',
};
const load = (env: Env): Compose => parse(interpolate(RAW, env), { merge: true }) as Compose;

/** Runs deploy/new-env.sh with `file` as its output. */
function newEnv(file: string) {
  return spawnSync('sh', [join(repoRoot, 'deploy/new-env.sh'), file], { encoding: 'utf8' });
}

function parseEnvFile(text: string): Env {
  return Object.fromEntries(
    text
      .split('\n')
      .filter((l) => l && !l.startsWith('#'))
      .map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]),
  );
}

test('compose requires every secret from the environment and names the missing one', () => {
  assert.deepEqual([...new Set(REQUIRED)].sort(), Object.keys(SECRETS).sort());
  load(SECRETS);
  for (const name of Object.keys(SECRETS)) {
    const without: Env = { ...SECRETS };
    delete without[name];
    assert.throws(() => load(without), new RegExp(`${name}.*deploy/new-env\\.sh`));
    assert.throws(() => load({ ...without, [name]: '' }), new RegExp(name), `${name} empty`);
  }
  // No value that looks like a credential is written in the file itself.
  const compose = load(SECRETS);
  for (const [name, svc] of Object.entries(compose.services)) {
    for (const [key, value] of Object.entries(svc.environment ?? {})) {
      if (/SECRET|TOKEN|PASSWORD/.test(key))
        assert.ok(
          Object.values(SECRETS).includes(String(value)),
          `${name}: ${key} is not from the environment`,
        );
    }
  }
  assert.ok(!existsSync(join(repoRoot, 'deploy/prometheus/router-admin-token')), 'a committed token file');
});

test('compose publishes ports on 127.0.0.1 unless CHAT_PUBLISH_ADDRESS says otherwise', () => {
  const published = (c: Compose) => Object.values(c.services).flatMap((s) => s.ports ?? []);
  assert.deepEqual(published(load(SECRETS)).sort(), [
    '127.0.0.1:3000:3000',
    '127.0.0.1:8080:8080',
    '127.0.0.1:9090:9090',
  ]);
  for (const p of published(load({ ...SECRETS, CHAT_PUBLISH_ADDRESS: '0.0.0.0' })))
    assert.match(p, /^0\.0\.0\.0:/);
});

test('compose: known settings, the router published on its port, hardened chat services, Prometheus gets the admin token', () => {
  const compose = load(SECRETS);
  const services = compose.services;
  for (const [name, svc] of Object.entries(services)) {
    const env = Object.fromEntries(Object.entries(svc.environment ?? {}).map(([k, v]) => [k, String(v)]));
    const chat = svc.image === 'chat-cluster:local';
    if (svc.command?.includes('node/dist/main.js')) {
      checkEnv(`compose ${name}`, env, 'node');
      assert.equal(env.CHAT_NODE_ADVERTISED_URL, `http://${name}:${env.CHAT_NODE_PORT}`);
    }
    if (svc.command?.includes('router/dist/main.js')) {
      checkEnv(`compose ${name}`, env, 'router');
      assert.ok(svc.ports?.includes(`127.0.0.1:${env.CHAT_ROUTER_PORT}:${env.CHAT_ROUTER_PORT}`));
    }
    if (chat) {
      assert.equal(svc.read_only, true, name);
      assert.deepEqual(svc.cap_drop, ['ALL'], name);
      assert.ok(svc.security_opt?.includes('no-new-privileges:true'), name);
    }
    for (const volume of svc.volumes ?? []) {
      const host = volume.split(':')[0] ?? '';
      if (host.startsWith('./'))
        assert.ok(existsSync(join(repoRoot, 'deploy', host)), `${name}: ${host} missing`);
    }
  }
  assert.equal(Object.keys(services).filter((n) => n.startsWith('node-')).length, 3);
  // Prometheus scrapes what the services serve, on the ports they listen on, with the router's token.
  const prom = parse(read('deploy/prometheus/prometheus.yml')) as {
    scrape_configs: {
      job_name: string;
      static_configs: { targets: string[] }[];
      authorization?: { credentials_file: string };
    }[];
  };
  const job = (name: string) => prom.scrape_configs.find((j) => j.job_name === name);
  assert.deepEqual(job('chat-node')?.static_configs[0]?.targets, [
    'node-1:8081',
    'node-2:8081',
    'node-3:8081',
  ]);
  assert.deepEqual(job('chat-router')?.static_configs[0]?.targets, [
    `router:${services.router?.environment?.CHAT_ROUTER_ADMIN_PORT}`,
  ]);
  const tokenFile = job('chat-router')?.authorization?.credentials_file;
  const mounted = services.prometheus?.configs?.find((c) => c.target === tokenFile);
  assert.ok(mounted, `nothing mounted at ${tokenFile}`);
  assert.equal(compose.configs?.[mounted.source]?.environment, 'CHAT_ROUTER_ADMIN_TOKEN');
  assert.equal(services.router?.environment?.CHAT_ROUTER_ADMIN_TOKEN, SECRETS.CHAT_ROUTER_ADMIN_TOKEN);
});

test('compose: Kafka takes only clients that log in, the services log in as chat and sign membership', () => {
  const services = load(SECRETS).services;
  const kafka = services.kafka?.environment ?? {};
  assert.match(String(kafka.KAFKA_LISTENERS), /^SASL_PLAINTEXT:\/\/:9092,CONTROLLER:\/\/:9093$/);
  // Only the controller's own listener (port 9093, not published, broker to itself) is without SASL.
  for (const entry of String(kafka.KAFKA_LISTENER_SECURITY_PROTOCOL_MAP).split(',')) {
    const [listener, protocol] = entry.split(':');
    if (listener !== 'CONTROLLER') assert.match(protocol ?? '', /^SASL_/, entry);
  }
  const jaas = String(kafka.KAFKA_LISTENER_NAME_SASL__PLAINTEXT_PLAIN_SASL_JAAS_CONFIG);
  assert.ok(jaas.includes(`user_chat="${SECRETS.CHAT_KAFKA_SASL_PASSWORD}"`), jaas);
  assert.ok(jaas.includes(`user_admin="${SECRETS.KAFKA_ADMIN_PASSWORD}"`), jaas);
  assert.ok(jaas.endsWith(';'));
  for (const [name, svc] of Object.entries(services)) {
    const command = svc.command?.join(' ') ?? '';
    const schema = command.includes('node/dist')
      ? nodeConfigSchema
      : command.includes('router/dist')
        ? routerConfigSchema
        : undefined;
    if (!schema) continue;
    const env = Object.fromEntries(Object.entries(svc.environment ?? {}).map(([k, v]) => [k, String(v)]));
    const config = loadConfig(schema, env);
    assert.deepEqual(
      kafkaConnectionOptions(config).sasl,
      { mechanism: 'plain', username: 'chat', password: SECRETS.CHAT_KAFKA_SASL_PASSWORD },
      name,
    );
    assert.ok(directoryAuthFromConfig(config).mac, `${name} signs membership`);
    assert.equal(config.clusterSecret, SECRETS.CHAT_CLUSTER_SECRET, name);
  }
});

test('deploy/new-env.sh writes every secret compose requires, random and private, and never overwrites', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'chat-env-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const [a, b] = [join(dir, 'a.env'), join(dir, 'b.env')];
  for (const file of [a, b]) {
    const r = newEnv(file);
    assert.equal(r.status, 0, r.stderr);
  }
  const envA = parseEnvFile(await readFile(a, 'utf8'));
  const envB = parseEnvFile(await readFile(b, 'utf8'));
  assert.deepEqual(Object.keys(envA).sort(), [...new Set(REQUIRED)].sort());
  for (const [name, value] of Object.entries(envA)) {
    assert.match(value, /^[A-Za-z0-9]{48}$/, name);
    assert.notEqual(value, envB[name], `${name} is the same in two runs`);
  }
  assert.equal(new Set(Object.values(envA)).size, Object.keys(envA).length, 'each secret its own value');
  assert.equal(statSync(a).mode & 0o077, 0, 'readable by its owner only');
  load(envA);
  // A second run refuses and leaves the file as it was.
  const before = await readFile(a, 'utf8');
  const again = newEnv(a);
  assert.equal(again.status, 1);
  assert.match(again.stderr, /exists; delete it first/);
  assert.equal(await readFile(a, 'utf8'), before);
  // deploy/.env, where it writes by default, is ignored by git.
  const ignored = spawnSync('git', ['check-ignore', '-q', 'deploy/.env'], { cwd: repoRoot });
  assert.equal(ignored.status, 0, 'deploy/.env is not ignored by git');
});
