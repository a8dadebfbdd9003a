// A real Prometheus (Debian's package, installed by .ci/run) scrapes a live cluster (router, two nodes,
// the real broker) under a little traffic of every kind; then every dashboard panel query and every alert
// expression is evaluated against it: no query may fail, and no panel may come back empty. It runs the
// Kubernetes scrape configuration (deploy/prometheus/prometheus-k8s.yml) itself, its pod discovery
// replaced by static targets carrying the labels that discovery gives the manifests' pods, so its
// relabelling, job names and the router's admin token are what is tested.
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { parse, stringify } from 'yaml';
import { mintToken } from '@chat/shared';
import { startNode } from '../harness/node-process.js';
import { rawRequest, upgradeRequest } from '../harness/raw-http.js';
import { startRouter } from '../harness/router-process.js';
import { TestClient, isMessage } from '../harness/ws-client.js';
import { useKafka } from '../kafka/harness.js';
import { freePort } from '../net.js';
import { repoRoot } from '../paths.js';
import { pollUntil } from '../poll.js';
import { alertRules, concrete, dashboardQueries, metricNames } from './dashboard.js';
import { k8sDocs, workloads } from './manifests.js';
import { PROCEDURE_ANCHORS, SHARD_ALERTS, SHARD_ALERT_CASES } from './shard-alert-cases.js';

const SECRET = 'prometheus-test-secret-0123456789abcdef';
const ADMIN = 'admin-token-for-prometheus';

interface PromResult {
  status: string;
  error?: string;
  data?: { result: unknown[] };
}

interface ScrapeJob {
  job_name: string;
  kubernetes_sd_configs?: { role: string; namespaces?: { names: string[] } }[];
  static_configs?: { targets: string[]; labels: Record<string, string> }[];
  authorization?: { credentials_file?: string };
}

/**
 * deploy/prometheus/prometheus-k8s.yml, runnable here: each job's pod discovery becomes one static target
 * per container port of every pod of the manifests' workloads, labelled as the discovery labels it
 * (`__meta_kubernetes_*`, which the job's relabelling reads), at the live process serving that port.
 * The router token's file and the rules are moved to `tokenFile` and the deploy rules.
 */
async function k8sScrapeConfig(
  listening: Record<string, Record<string, number>[]>,
  tokenFile: string,
): Promise<string> {
  const config = parse(await readFile(join(repoRoot, 'deploy/prometheus/prometheus-k8s.yml'), 'utf8')) as {
    global: Record<string, string>;
    rule_files: string[];
    scrape_configs: ScrapeJob[];
  };
  const pods = workloads(k8sDocs()).flatMap((w) => {
    const app = w.spec.template.metadata.labels.app ?? '';
    const names = w.spec.template.spec.containers.flatMap((c) => (c.ports ?? []).map((p) => p.name));
    return (listening[app] ?? []).map((ports, i) => ({ app, pod: `${w.metadata.name}-${i}`, names, ports }));
  });
  for (const job of config.scrape_configs) {
    assert.equal(job.kubernetes_sd_configs?.[0]?.role, 'pod', job.job_name);
    const namespace = job.kubernetes_sd_configs[0].namespaces?.names[0] ?? '';
    delete job.kubernetes_sd_configs;
    job.static_configs = pods.flatMap((p) =>
      p.names.map((name) => ({
        targets: [`127.0.0.1:${p.ports[name]}`],
        labels: {
          __meta_kubernetes_namespace: namespace,
          __meta_kubernetes_pod_name: p.pod,
          __meta_kubernetes_pod_label_app: p.app,
          __meta_kubernetes_pod_container_port_name: name,
        },
      })),
    );
    if (job.authorization?.credentials_file) job.authorization.credentials_file = tokenFile;
  }
  config.global = { scrape_interval: '1s', evaluation_interval: '1s' };
  config.rule_files = [join(repoRoot, 'deploy/prometheus/alerts.yml')];
  return stringify(config);
}

test('promtool accepts the deploy configurations and rules', async (t) => {
  // Debian's Prometheus is built without Kubernetes discovery, so the Kubernetes configuration is checked
  // with its discovery replaced by static targets (everything else as written).
  const dir = await mkdtemp(join(tmpdir(), 'chat-promtool-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const k8s = join(dir, 'prometheus-k8s.yml');
  await writeFile(k8s, await k8sScrapeConfig({}, join(dir, 'token')));
  for (const args of [
    ['check', 'config', '--syntax-only', join(repoRoot, 'deploy/prometheus/prometheus.yml')],
    ['check', 'config', '--syntax-only', k8s],
    ['check', 'rules', join(repoRoot, 'deploy/prometheus/alerts.yml')],
  ]) {
    const r = spawnSync('promtool', args, { encoding: 'utf8' });
    assert.equal(r.status, 0, `promtool ${args.join(' ')}: ${r.stdout}${r.stderr}`);
  }
});

test('the shard alerts fire when they should and stay quiet otherwise (promtool test rules)', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'chat-promtool-test-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const doc = parse(await readFile(join(repoRoot, 'deploy/prometheus/alerts.yml'), 'utf8')) as {
    groups: { rules: { alert: string; annotations?: Record<string, string> }[] }[];
  };
  const rules = doc.groups.flatMap((g) => g.rules);
  // Each names a procedure of docs/operations.md and says what happened and what to do.
  for (const name of SHARD_ALERTS) {
    const rule = rules.find((r) => r.alert === name);
    assert.ok(rule, `no rule ${name} in alerts.yml`);
    assert.ok(rule.annotations?.summary && rule.annotations.description, `${name}: summary and description`);
    assert.match(
      rule.annotations.runbook ?? '',
      new RegExp(`^docs/operations\\.md#(${PROCEDURE_ANCHORS.join('|')})$`),
      name,
    );
  }
  // promtool compares annotations too: the expressions, durations and labels are tested on a copy without.
  for (const rule of rules) delete rule.annotations;
  await writeFile(join(dir, 'alerts.yml'), stringify(doc));
  for (const c of SHARD_ALERT_CASES) {
    const file = join(dir, 'case.yml');
    await writeFile(
      file,
      stringify({
        rule_files: ['alerts.yml'],
        evaluation_interval: '1m',
        tests: [
          {
            interval: '1m',
            input_series: Object.entries(c.series).map(([series, values]) => ({ series, values })),
            alert_rule_test: c.expect.map((e) => ({
              eval_time: e.at,
              alertname: e.alert,
              exp_alerts: e.firing.map((labels) => ({ exp_labels: labels })),
            })),
          },
        ],
      }),
    );
    const r = spawnSync('promtool', ['test', 'rules', file], { encoding: 'utf8' });
    assert.equal(r.status, 0, `${c.name}: ${r.stdout}${r.stderr}`);
  }
  const covered = new Set(
    SHARD_ALERT_CASES.flatMap((c) => c.expect.filter((e) => e.firing.length > 0).map((e) => e.alert)),
  );
  assert.deepEqual([...covered].sort(), [...SHARD_ALERTS].sort(), 'every shard alert seen firing');
});

test('every dashboard panel and alert expression evaluates against a live cluster', async (t) => {
  const kafka = await useKafka(t);
  const auth = { CHAT_AUTH_MODE: 'jwt', CHAT_AUTH_HS256_SECRET: SECRET };
  const nodeEnv = {
    ...auth,
    CHAT_KAFKA_BROKERS: kafka.brokers,
    CHAT_KAFKA_TOPIC_PREFIX: kafka.uniqueName('prom'),
    CHAT_CLUSTER_SHARDS: '2',
    CHAT_NODE_RATE_PER_SEC: '20',
    CHAT_NODE_RATE_BURST: '20',
  };
  const [n1, n2] = await Promise.all([
    startNode(t, { nodeId: 'p1', env: nodeEnv }),
    startNode(t, { nodeId: 'p2', env: nodeEnv }),
  ]);
  const router = await startRouter(t, {
    ...auth,
    CHAT_CLUSTER_SHARDS: nodeEnv.CHAT_CLUSTER_SHARDS,
    CHAT_ROUTER_NODES: `p1=http://127.0.0.1:${n1.port},p2=http://127.0.0.1:${n2.port}`,
    CHAT_ROUTER_ADMIN_TOKEN: ADMIN,
    CHAT_ROUTER_MIGRATION_WINDOW_MS: '200',
  });
  await pollUntil(async () => (await router.members()).ringSize === 2, { what: 'both nodes in the ring' });

  // Prometheus, scraping every second, with the deploy alert rules.
  const dir = await mkdtemp(join(tmpdir(), 'chat-prom-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  await writeFile(join(dir, 'token'), ADMIN);
  const promPort = await freePort();
  await writeFile(
    join(dir, 'prometheus.yml'),
    await k8sScrapeConfig(
      {
        'chat-node': [{ http: n1.port }, { http: n2.port }],
        'chat-router': [{ ws: router.port, admin: router.adminPort }],
      },
      join(dir, 'token'),
    ),
  );
  const version = spawnSync('prometheus', ['--version'], { encoding: 'utf8' });
  assert.equal(
    version.status,
    0,
    `no usable prometheus binary (${version.error?.message ?? version.stderr}); .ci/run installs Debian's package`,
  );
  const prom = spawn(
    'prometheus',
    [
      `--config.file=${join(dir, 'prometheus.yml')}`,
      `--storage.tsdb.path=${join(dir, 'data')}`,
      `--web.listen-address=127.0.0.1:${promPort}`,
      '--log.level=warn',
    ],
    { stdio: ['ignore', 'ignore', 'pipe'] },
  );
  let promLog = '';
  prom.stderr.on('data', (b: Buffer) => (promLog = (promLog + b.toString()).slice(-4000)));
  // 'error' without 'exit' when the process could not be spawned at all.
  const promExited = new Promise((r) => {
    prom.once('exit', r);
    prom.once('error', r);
  });
  t.after(async () => {
    if (prom.exitCode === null) prom.kill('SIGTERM');
    await promExited;
  });
  const query = async (expr: string): Promise<PromResult> => {
    const res = await fetch(`http://127.0.0.1:${promPort}/api/v1/query?query=${encodeURIComponent(expr)}`);
    return (await res.json()) as PromResult;
  };
  await pollUntil(async () => (await fetch(`http://127.0.0.1:${promPort}/-/ready`)).ok, {
    timeoutMs: 30_000,
    what: `prometheus ready (${promLog})`,
  });
  await pollUntil(
    async () =>
      (await query('sum(up)')).data?.result.length === 1 &&
      (await query('count(up == 1)')).data?.result.length === 1 &&
      Number(((await query('count(up == 1)')).data?.result[0] as { value: [number, string] }).value[1]) === 3,
    {
      timeoutMs: 30_000,
      what: 'all three targets up',
    },
  );
  // The relabelling kept one target per pod, named by the pod (not the router's public port), and the
  // router's admin listener took the token (it answers 401 without).
  const up = (await query('up')).data?.result as { metric: Record<string, string> }[];
  assert.deepEqual(up.map((r) => `${r.metric.job}/${r.metric.instance}`).sort(), [
    'chat-node/chat-node-0',
    'chat-node/chat-node-1',
    'chat-router/chat-router-0',
  ]);

  // Traffic of every kind: local and cross-node messages, client errors, a bad token, a flood, a drain.
  const users = Array.from({ length: 40 }, (_, i) => `prom-${i}`);
  const owners = await router.lookup(users);
  const onP1 = users.filter((_, i) => owners[i] === 'p1');
  const onP2 = users.filter((_, i) => owners[i] === 'p2');
  const connect = async (u: string) =>
    TestClient.connect(t, router.wsUrl(u), [
      'chat.v1',
      `bearer.${await mintToken({ secret: SECRET, sub: u })}`,
    ]);
  const [a, b, c] = await Promise.all([
    connect(onP1[0] ?? ''),
    connect(onP1[1] ?? ''),
    connect(onP2[0] ?? ''),
  ]);
  await pollUntil(async () => (await n1.presence(onP2[0] ?? '')).remoteNodes.length === 1, {
    what: 'presence across nodes',
  });
  for (let i = 0; i < 10; i++) {
    a.send({ type: 'send', cid: `l${i}`, to: onP1[1] ?? '', body: 'local' });
    a.send({ type: 'send', cid: `r${i}`, to: onP2[0] ?? '', body: 'remote' });
  }
  await b.waitCount(isMessage, 10);
  await c.waitCount(isMessage, 10);
  b.send('not json');
  b.send({ type: 'bogus' });
  const refused = await rawRequest(router.port, upgradeRequest('/chat/eve'));
  assert.equal(refused.status, 401);
  refused.socket.destroy();
  for (let i = 0; i < 30; i++) c.send({ type: 'send', cid: `f${i}`, to: onP1[0] ?? '', body: 'flood' });
  await c.next((f) => typeof f === 'object' && f.code === 'NODE_ERR_RATE_LIMITED');
  await router.admin('/nodes/p2/drain', { method: 'POST' });
  await c.closed;
  await router.admin('/nodes/p2/undrain', { method: 'POST' });
  await pollUntil(async () => (await router.members()).ringSize === 2, { what: 'p2 back' });

  // Every panel query returns data once a few scrapes have seen the traffic.
  const panels = dashboardQueries();
  assert.ok(panels.length >= 26);
  const results = new Map<string, PromResult>();
  await pollUntil(
    async () => {
      for (const p of panels) results.set(`${p.panel}/${p.refId}`, await query(concrete(p.expr)));
      return [...results.values()].every((r) => r.status === 'success' && (r.data?.result.length ?? 0) > 0);
    },
    { timeoutMs: 60_000, intervalMs: 1000, what: 'every panel to have data' },
  ).catch(() => undefined);
  for (const p of panels) {
    const r = results.get(`${p.panel}/${p.refId}`);
    assert.equal(r?.status, 'success', `${p.panel} ${p.refId}: ${r?.error ?? ''}`);
    assert.ok((r?.data?.result.length ?? 0) > 0, `panel "${p.panel}" (${p.refId}) is empty: ${p.expr}`);
  }
  t.diagnostic(
    `${panels.length} panel queries on ${new Set(panels.map((p) => p.panel)).size} panels returned data`,
  );

  // The shard gauges tell the truth at rest (after the drain and undrain): both shards owned in the
  // routers' table and claimed once by the nodes, nothing moving or handed over.
  const scalar = async (expr: string) =>
    Number(((await query(expr)).data?.result[0] as { value: [number, string] } | undefined)?.value[1]);
  const atRest = {
    'max(chat_router_shard_count)': 2,
    'sum(chat_node_shards_owned)': 2,
    'max(chat_router_shards_without_owner)': 0,
    'sum(chat_router_shard_moves_in_progress)': 0,
    'sum(chat_router_migrating_connections)': 0,
    'sum(chat_node_shard_handovers)': 0,
  };
  const seen: Record<string, number> = {};
  await pollUntil(
    async () => {
      for (const expr of Object.keys(atRest)) seen[expr] = await scalar(expr);
      return Object.entries(atRest).every(([expr, v]) => seen[expr] === v);
    },
    { timeoutMs: 30_000, intervalMs: 500, what: 'the shard gauges at rest' },
  ).catch(() => undefined);
  assert.deepEqual(seen, atRest);

  // Every alert expression evaluates, and every metric it reads exists.
  const rules = alertRules();
  assert.ok(rules.length >= 13);
  for (const rule of rules) {
    const r = await query(rule.expr);
    assert.equal(r.status, 'success', `${rule.alert}: ${r.error ?? ''}`);
    for (const name of metricNames(rule.expr)) {
      const series = await query(`count({__name__="${name}"})`);
      assert.ok(
        (series.data?.result.length ?? 0) > 0,
        `${rule.alert} reads ${name}, which no target exports`,
      );
    }
  }
  // The rules are loaded and evaluated by Prometheus itself, without errors.
  const loaded = (await (await fetch(`http://127.0.0.1:${promPort}/api/v1/rules`)).json()) as {
    data: { groups: { rules: { name: string; health: string; lastError?: string }[] }[] };
  };
  const evaluated = loaded.data.groups.flatMap((g) => g.rules);
  assert.deepEqual(evaluated.map((r) => r.name).sort(), rules.map((r) => r.alert).sort());
  await pollUntil(
    () =>
      fetch(`http://127.0.0.1:${promPort}/api/v1/rules`).then(async (res) => {
        const body = (await res.json()) as typeof loaded;
        return body.data.groups.flatMap((g) => g.rules).every((r) => r.health === 'ok');
      }),
    { what: 'every rule evaluated healthy' },
  );
  t.diagnostic(`${rules.length} alert rules evaluated: ${rules.map((r) => r.alert).join(', ')}`);
});
