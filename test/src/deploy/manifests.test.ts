// No Docker engine or Kubernetes runs here, so the deployment files are checked by reading them: they
// parse, every CHAT_* variable they set is a known setting with a valid value, ports, probe paths and
// commands match what the code serves, and they fail safe (hardened pods, not-ready nodes still
// resolvable, TLS in front, a Dockerfile that ships only what runs). compose.test.ts checks compose;
// checkov.test.ts runs a real checker over every file here; network-policy.test.ts evaluates the
// NetworkPolicies; image.test.ts builds and starts what the image runs.
import assert from 'node:assert/strict';
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { parseAllDocuments, parse } from 'yaml';
import {
  KNOWN_ENV,
  directoryAuthFromConfig,
  kafkaConnectionOptions,
  loadConfig,
  nodeConfigSchema,
  routerConfigSchema,
} from '@chat/shared';
import { repoRoot } from '../paths.js';
import { alertRules } from './dashboard.js';
import { checkEnv, k8sDocs, read, workloads, type Env } from './manifests.js';

/** Paths each listener serves (node/src/chat-node.ts, router/src/router.ts). */
const SERVED = {
  node: new Set(['/healthz', '/readyz', '/metrics']),
  routerPublic: new Set(['/healthz', '/readyz']),
};

test('every deploy YAML and JSON file parses', () => {
  const files: string[] = [];
  const walk = (dir: string) => {
    for (const e of readdirSync(join(repoRoot, dir), { withFileTypes: true })) {
      const p = `${dir}/${e.name}`;
      if (e.isDirectory()) walk(p);
      else if (/\.(ya?ml|json)$/.test(e.name)) files.push(p);
    }
  };
  walk('deploy');
  assert.ok(files.length >= 12, files.join(', '));
  for (const f of files) {
    if (f.endsWith('.json')) JSON.parse(read(f));
    else for (const doc of parseAllDocuments(read(f))) assert.deepEqual(doc.errors, [], f);
  }
});

test('kubernetes: workloads, probes on served paths and declared ports, known settings, a preStop drain, PDBs', () => {
  const docs = k8sDocs();
  const configMap = docs.find((d) => d.kind === 'ConfigMap')?.data ?? {};
  const kinds = docs.map((d) => `${d.kind}/${d.metadata.name}`).sort();
  for (const k of [
    'Namespace/chat',
    'ConfigMap/chat-config',
    'Deployment/chat-router',
    'Service/chat-router',
    'Ingress/chat-router',
    'StatefulSet/chat-node',
    'Service/chat-node',
    'PodDisruptionBudget/chat-node',
    'PodDisruptionBudget/chat-router',
    'NetworkPolicy/default-deny',
    'NetworkPolicy/chat-router',
    'NetworkPolicy/chat-node',
  ]) {
    assert.ok(kinds.includes(k), `missing ${k}`);
  }
  const sts = workloads(docs).find((d) => d.kind === 'StatefulSet');
  assert.equal(sts?.spec.serviceName, 'chat-node');
  // A rolling update paces itself: a restarted node's users move back (migration window) before the next.
  const migrationMs = Number(
    configMap.CHAT_ROUTER_MIGRATION_WINDOW_MS ?? routerConfigSchema.migrationWindowMs.default,
  );
  assert.ok(
    (sts?.spec.minReadySeconds ?? 0) * 1000 >= 2 * migrationMs,
    'minReadySeconds covers the move back',
  );

  for (const workload of workloads(docs)) {
    for (const c of workload.spec.template.spec.containers) {
      const service = c.command?.includes('node/dist/main.js') ? 'node' : 'router';
      const env: Env = { ...configMap };
      for (const e of c.env ?? [])
        env[e.name] = e.value ?? (e.name === 'CHAT_NODE_ID' ? 'node-0' : 'x'.repeat(40));
      checkEnv(`${workload.metadata.name}/${c.name}`, env, service);
      const port = (name: string) => c.ports?.find((p) => p.name === name)?.containerPort;
      if (service === 'node') {
        assert.equal(port('http'), Number(env.CHAT_NODE_PORT ?? nodeConfigSchema.port.default));
        for (const probe of [c.startupProbe, c.readinessProbe, c.livenessProbe]) {
          assert.ok(probe && SERVED.node.has(probe.httpGet.path) && probe.httpGet.port === 'http', c.name);
        }
        assert.match(c.lifecycle?.preStop?.exec.command.join(' ') ?? '', /\/internal\/drain/);
        assert.ok(env.CHAT_NODE_ADVERTISED_URL?.includes(':8081'));
        // The advertised name is the pod's name under the headless Service.
        assert.match(env.CHAT_NODE_ADVERTISED_URL ?? '', /^http:\/\/\$\(CHAT_NODE_ID\)\.chat-node\./);
      } else {
        assert.equal(port('ws'), Number(env.CHAT_ROUTER_PORT ?? routerConfigSchema.port.default));
        assert.equal(
          port('admin'),
          Number(env.CHAT_ROUTER_ADMIN_PORT ?? routerConfigSchema.adminPort.default),
        );
        for (const probe of [c.startupProbe, c.readinessProbe, c.livenessProbe]) {
          assert.ok(
            probe && SERVED.routerPublic.has(probe.httpGet.path) && probe.httpGet.port === 'ws',
            c.name,
          );
        }
        assert.ok(env.CHAT_ROUTER_ADMIN_TOKEN, 'an admin listener off loopback needs its token');
      }
      // The start-up probe covers the longest start (waiting for Kafka) before liveness counts.
      const startup = c.startupProbe;
      const startupBudgetMs = (startup?.periodSeconds ?? 10) * (startup?.failureThreshold ?? 3) * 1000;
      assert.ok(
        startupBudgetMs >= Number(env.CHAT_NODE_BUS_START_TIMEOUT_MS ?? 30_000),
        `${c.name}: a start-up probe of ${startupBudgetMs} ms`,
      );
      // What the image runs exists in the source.
      const entry = (c.command ?? [])[1] ?? '';
      assert.ok(existsSync(join(repoRoot, entry.replace('/dist/', '/src/').replace(/\.js$/, '.ts'))), entry);
    }
  }
  for (const name of Object.keys(configMap)) assert.ok(KNOWN_ENV.has(name), `ConfigMap: unknown ${name}`);
});

test('kubernetes: every pod runs hardened (non-root, read-only, no capabilities, seccomp) with limits and spread', () => {
  const docs = k8sDocs();
  for (const d of docs.filter((x) => x.kind !== 'Namespace')) {
    assert.equal(d.metadata.namespace, 'chat', `${d.kind}/${d.metadata.name}: not in the chat namespace`);
  }
  const ns = docs.find((d) => d.kind === 'Namespace');
  assert.equal(ns?.metadata.labels?.['pod-security.kubernetes.io/enforce'], 'restricted');
  const all = workloads(docs);
  assert.equal(all.length, 2);
  for (const w of all) {
    const pod = w.spec.template.spec;
    const where = `${w.kind}/${w.metadata.name}`;
    assert.equal(pod.automountServiceAccountToken, false, where);
    assert.equal(pod.securityContext?.runAsNonRoot, true, where);
    assert.ok((pod.securityContext?.runAsUser ?? 0) >= 10000, `${where}: a high, non-root uid`);
    assert.equal(pod.securityContext?.seccompProfile?.type, 'RuntimeDefault', where);
    const spreadKeys = (pod.topologySpreadConstraints ?? [])
      .filter((t) => t.labelSelector.matchLabels.app === w.spec.template.metadata.labels.app)
      .map((t) => t.topologyKey);
    assert.deepEqual(spreadKeys.sort(), ['kubernetes.io/hostname', 'topology.kubernetes.io/zone'], where);
    for (const c of pod.containers) {
      assert.equal(c.securityContext?.allowPrivilegeEscalation, false, where);
      assert.equal(c.securityContext?.privileged, false, where);
      assert.equal(c.securityContext?.readOnlyRootFilesystem, true, where);
      assert.deepEqual(c.securityContext?.capabilities?.drop, ['ALL'], where);
      assert.equal(c.securityContext?.capabilities?.add, undefined, where);
      for (const r of ['cpu', 'memory']) {
        assert.ok(c.resources?.requests?.[r], `${where}: ${r} request`);
        assert.ok(c.resources?.limits?.[r], `${where}: ${r} limit`);
      }
    }
  }
});

test('kubernetes: the headless Service publishes not-ready nodes, so a Kafka outage keeps their names resolving', () => {
  // Issue 15, item 5: a node answers /readyz 503 while the bus is down; its advertised name must still
  // resolve, or the routers' probes fail and the ring empties.
  const docs = k8sDocs();
  const sts = workloads(docs).find((d) => d.kind === 'StatefulSet');
  const headless = docs.find((d) => d.kind === 'Service' && d.metadata.name === sts?.spec.serviceName);
  assert.equal(headless?.spec?.clusterIP, 'None');
  assert.equal(headless?.spec?.publishNotReadyAddresses, true);
  const container = sts?.spec.template.spec.containers[0];
  assert.equal(container?.readinessProbe?.httpGet.path, '/readyz', 'readiness follows the bus');
});

test('kubernetes: clients reach the routers through TLS only; no Service is exposed by itself', () => {
  const docs = k8sDocs();
  for (const svc of docs.filter((d) => d.kind === 'Service')) {
    assert.ok(
      [undefined, 'ClusterIP'].includes(svc.spec?.type as string | undefined),
      `${svc.metadata.name}: ${String(svc.spec?.type)}`,
    );
  }
  const ingress = docs.find((d) => d.kind === 'Ingress')?.spec as {
    tls: { hosts: string[]; secretName: string }[];
    rules: {
      host: string;
      http: { paths: { backend: { service: { name: string; port: { name: string } } } }[] };
    }[];
  };
  const tlsHosts = new Set(ingress.tls.flatMap((t) => t.hosts));
  for (const rule of ingress.rules) {
    assert.ok(tlsHosts.has(rule.host), `${rule.host} has no TLS`);
    for (const p of rule.http.paths)
      assert.deepEqual(p.backend.service, { name: 'chat-router', port: { name: 'ws' } });
  }
  const annotations = docs.find((d) => d.kind === 'Ingress')?.metadata.annotations ?? {};
  assert.equal(annotations['nginx.ingress.kubernetes.io/force-ssl-redirect'], 'true');
  assert.ok(Number(annotations['nginx.ingress.kubernetes.io/proxy-read-timeout']) >= 3600);
  assert.ok(Number(annotations['nginx.ingress.kubernetes.io/limit-rps']) > 0, 'a per-client handshake limit');
});

test('kubernetes: the services log in to Kafka (SCRAM over TLS, secrets as mounted files) and sign membership', () => {
  const docs = k8sDocs();
  const configMap = docs.find((d) => d.kind === 'ConfigMap')?.data ?? {};
  for (const w of workloads(docs)) {
    const pod = w.spec.template.spec;
    const [container] = pod.containers;
    assert.ok(container);
    const schema = container.command?.join(' ').includes('router/') ? routerConfigSchema : nodeConfigSchema;
    // The settings the container gets: the ConfigMap, its literal env, a stand-in for each Secret key.
    const env: Env = { ...configMap };
    const secretKeys = new Map<string, string>();
    for (const e of container.env ?? []) {
      const ref = e.valueFrom?.secretKeyRef;
      if (ref) {
        secretKeys.set(e.name, `${ref.name}/${ref.key}`);
        env[e.name] = `stand-in-for-${ref.name}-${ref.key}-0123456789abcdef`;
      } else if (e.value !== undefined && !e.value.includes('$(')) env[e.name] = e.value;
    }
    const config = loadConfig(schema, env);
    // Files exist only where a Secret is mounted read-only with that key.
    const mounted = new Map<string, string>();
    for (const m of container.volumeMounts ?? []) {
      const secret = pod.volumes?.find((v) => v.name === m.name)?.secret;
      assert.ok(secret && m.readOnly, `${w.metadata.name}: ${m.mountPath} is a read-only Secret`);
      assert.equal(secret.defaultMode, 0o440, 'readable by the owner and the pod group only');
      for (const item of secret.items ?? [])
        mounted.set(`${m.mountPath}/${item.path}`, `${secret.secretName}/${item.key}`);
    }
    assert.equal(
      pod.securityContext?.fsGroup,
      pod.securityContext?.runAsUser,
      'the group that may read them',
    );
    const read = (path: string) => {
      const from = mounted.get(path);
      if (!from) throw Object.assign(new Error(`ENOENT ${path}`), { code: 'ENOENT' });
      return `contents of ${from}`;
    };
    const kafka = kafkaConnectionOptions(config, read);
    assert.match(kafka.sasl?.mechanism ?? 'none', /^scram-sha-(256|512)$/, `${w.metadata.name}: SCRAM`);
    assert.equal(
      kafka.sasl?.password,
      'contents of chat-kafka-client/password',
      'the password from its file',
    );
    assert.deepEqual(
      kafka.ssl?.ca,
      ['contents of chat-kafka-client/ca.crt'],
      'brokers checked against the CA',
    );
    assert.equal(config.kafkaSaslPassword, '', 'no password in the environment');
    assert.ok(directoryAuthFromConfig(config).mac, `${w.metadata.name} signs membership`);
    assert.equal(config.clusterRecordAuth, 'required');
    assert.equal(secretKeys.get('CHAT_CLUSTER_SECRET'), 'chat-secrets/cluster-secret');
  }
});

test('the Dockerfile: two stages, production files only, non-root, a health check, the pinned Node.js release', () => {
  const dockerfile = read('deploy/Dockerfile');
  const lines = dockerfile.split('\n');
  for (const line of lines.filter((l) => l.startsWith('COPY ') && !l.includes('--from='))) {
    const sources = line
      .replace(/^COPY\s+/, '')
      .split(/\s+/)
      .slice(0, -1);
    for (const s of sources) assert.ok(existsSync(join(repoRoot, s)), `COPY ${s}`);
  }
  // The install needs every patch the workspace applies.
  const workspace = parse(read('pnpm-workspace.yaml')) as { patchedDependencies?: Env };
  for (const patch of Object.values(workspace.patchedDependencies ?? {})) {
    assert.ok(patch.startsWith('patches/') && dockerfile.includes('COPY patches patches'), patch);
  }
  const stages = lines.filter((l) => l.startsWith('FROM '));
  assert.equal(stages.length, 2);
  const runtime = dockerfile.slice(dockerfile.lastIndexOf('\nFROM '));
  // The runtime stage takes only the build's output: no source, test or workspace file.
  const runtimeCopies = runtime.split('\n').filter((l) => l.startsWith('COPY '));
  assert.deepEqual(runtimeCopies, ['COPY --from=build /app /app']);
  assert.match(dockerfile, /sh deploy\/build-prod\.sh \/src \/app/);
  assert.match(read('deploy/build-prod.sh'), /--prod deploy/);
  assert.match(runtime, /^USER 10001:10001$/m);
  assert.match(runtime, /^HEALTHCHECK .*CMD \["node", "\/app\/healthcheck\.mjs"\]$/m);
  assert.match(runtime, /^CMD \["node", "node\/dist\/main\.js"\]$/m);
  const tsconfig = JSON.parse(read('node/tsconfig.json')) as {
    compilerOptions: { outDir: string; rootDir: string };
  };
  assert.deepEqual([tsconfig.compilerOptions.rootDir, tsconfig.compilerOptions.outDir], ['src', 'dist']);
  // Both stages use one exact base (node-version.test.ts checks the release).
  for (const s of stages)
    assert.match(s, /^FROM node:\d+\.\d+\.\d+-bookworm-slim(@sha256:[0-9a-f]{64})?( AS build)?$/);
  assert.equal(new Set(stages.map((s) => s.split(' ')[1])).size, 1);
});

test('prometheus: compose and Kubernetes scrape configs name the jobs the alert rules select, and both send the router token', () => {
  interface Job {
    job_name: string;
    authorization?: { credentials_file?: string };
  }
  const jobsOf = (path: string) => (parse(read(path)) as { scrape_configs: Job[] }).scrape_configs;
  const compose = jobsOf('deploy/prometheus/prometheus.yml');
  const k8s = jobsOf('deploy/prometheus/prometheus-k8s.yml');
  for (const jobs of [compose, k8s]) {
    assert.deepEqual(jobs.map((j) => j.job_name).sort(), ['chat-node', 'chat-router']);
    assert.ok(jobs.find((j) => j.job_name === 'chat-router')?.authorization?.credentials_file);
  }
  for (const rule of alertRules()) {
    for (const [, job] of rule.expr.matchAll(/\bjob\s*=~?\s*"([^"]*)"/g)) {
      for (const jobs of [compose, k8s]) {
        assert.ok(
          jobs.some((j) => new RegExp(`^(?:${job})$`).test(j.job_name)),
          `${rule.alert} selects job ${job}`,
        );
      }
    }
  }
});
