// No Docker engine runs here, so the deployment files are checked by reading them: they parse, every
// CHAT_* variable they set is a known setting with a valid value, and ports, probe paths and commands
// match what the code serves.
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { parseAllDocuments, parse } from 'yaml';
import { KNOWN_ENV, loadConfig, nodeConfigSchema, routerConfigSchema } from '@chat/shared';
import { repoRoot } from '../paths.js';

const read = (path: string) => readFileSync(join(repoRoot, path), 'utf8');

/** Paths each listener serves (node/src/chat-node.ts, router/src/router.ts). */
const SERVED = {
  node: new Set(['/healthz', '/readyz', '/metrics']),
  routerPublic: new Set(['/healthz', '/readyz']),
};

type Env = Record<string, string>;

/** Checks names and, for literal values, validity under the service's schema. */
function checkEnv(where: string, env: Env, service: 'node' | 'router'): void {
  for (const name of Object.keys(env)) {
    if (name.startsWith('CHAT_')) assert.ok(KNOWN_ENV.has(name), `${where}: unknown setting ${name}`);
  }
  const literal = Object.fromEntries(Object.entries(env).filter(([, v]) => !v.includes('$(')));
  assert.doesNotThrow(
    () => loadConfig(service === 'node' ? nodeConfigSchema : routerConfigSchema, literal),
    `${where}: invalid values`,
  );
}

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
  assert.ok(files.length >= 9, files.join(', '));
  for (const f of files) {
    if (f.endsWith('.json')) JSON.parse(read(f));
    else for (const doc of parseAllDocuments(read(f))) assert.deepEqual(doc.errors, [], f);
  }
});

test('docker-compose: known settings, the router published on its port, mounted files exist', () => {
  const compose = parse(read('deploy/docker-compose.yml'), { merge: true }) as {
    services: Record<
      string,
      {
        environment?: Record<string, string | number>;
        command?: string[];
        ports?: string[];
        volumes?: string[];
      }
    >;
  };
  const services = compose.services;
  for (const [name, svc] of Object.entries(services)) {
    const env = Object.fromEntries(Object.entries(svc.environment ?? {}).map(([k, v]) => [k, String(v)]));
    if (svc.command?.includes('node/dist/main.js')) {
      checkEnv(`compose ${name}`, env, 'node');
      assert.equal(env.CHAT_NODE_ADVERTISED_URL, `http://${name}:${env.CHAT_NODE_PORT}`);
    }
    if (svc.command?.includes('router/dist/main.js')) {
      checkEnv(`compose ${name}`, env, 'router');
      assert.ok(svc.ports?.includes(`${env.CHAT_ROUTER_PORT}:${env.CHAT_ROUTER_PORT}`));
    }
    for (const volume of svc.volumes ?? []) {
      const host = volume.split(':')[0] ?? '';
      if (host.startsWith('./'))
        assert.ok(existsSync(join(repoRoot, 'deploy', host)), `${name}: ${host} missing`);
    }
  }
  assert.equal(Object.keys(services).filter((n) => n.startsWith('node-')).length, 3);
  // Prometheus scrapes what the services serve, on the ports they listen on.
  const prom = parse(read('deploy/prometheus/prometheus.yml')) as {
    scrape_configs: { job_name: string; static_configs: { targets: string[] }[] }[];
  };
  const targets = (job: string) =>
    prom.scrape_configs.find((j) => j.job_name === job)?.static_configs[0]?.targets ?? [];
  assert.deepEqual(targets('chat-node'), ['node-1:8081', 'node-2:8081', 'node-3:8081']);
  assert.deepEqual(targets('chat-router'), [
    `router:${services.router?.environment?.CHAT_ROUTER_ADMIN_PORT}`,
  ]);
});

interface Container {
  name: string;
  command?: string[];
  ports?: { name: string; containerPort: number }[];
  env?: { name: string; value?: string; valueFrom?: unknown }[];
  readinessProbe?: { httpGet: { path: string; port: string } };
  livenessProbe?: { httpGet: { path: string; port: string } };
  lifecycle?: { preStop?: { exec: { command: string[] } } };
}

function k8sDocs(): {
  kind: string;
  metadata: { name: string };
  data?: Env;
  spec?: Record<string, unknown>;
}[] {
  return readdirSync(join(repoRoot, 'deploy/k8s')).flatMap((f) =>
    parseAllDocuments(read(`deploy/k8s/${f}`)).map(
      (d) => d.toJS() as { kind: string; metadata: { name: string } },
    ),
  );
}

test('kubernetes: workloads, probes on served paths and declared ports, known settings, a preStop drain, PDBs', () => {
  const docs = k8sDocs();
  const configMap = docs.find((d) => d.kind === 'ConfigMap')?.data ?? {};
  const kinds = docs.map((d) => `${d.kind}/${d.metadata.name}`).sort();
  for (const k of [
    'ConfigMap/chat-config',
    'Deployment/chat-router',
    'Service/chat-router',
    'StatefulSet/chat-node',
    'Service/chat-node',
    'PodDisruptionBudget/chat-node',
    'PodDisruptionBudget/chat-router',
  ]) {
    assert.ok(kinds.includes(k), `missing ${k}`);
  }
  const headless = docs.find((d) => d.kind === 'Service' && d.metadata.name === 'chat-node')?.spec;
  assert.equal(headless?.clusterIP, 'None');
  const sts = docs.find((d) => d.kind === 'StatefulSet')?.spec as {
    serviceName: string;
    template: { spec: { containers: Container[] } };
  };
  assert.equal(sts.serviceName, 'chat-node');

  for (const workload of docs.filter((d) => d.kind === 'Deployment' || d.kind === 'StatefulSet')) {
    const spec = workload.spec as { template: { spec: { containers: Container[] } } };
    for (const c of spec.template.spec.containers) {
      const service = c.command?.includes('node/dist/main.js') ? 'node' : 'router';
      const env: Env = { ...configMap };
      for (const e of c.env ?? [])
        env[e.name] = e.value ?? (e.name === 'CHAT_NODE_ID' ? 'node-0' : 'x'.repeat(40));
      checkEnv(`${workload.metadata.name}/${c.name}`, env, service);
      const port = (name: string) => c.ports?.find((p) => p.name === name)?.containerPort;
      if (service === 'node') {
        assert.equal(port('http'), Number(env.CHAT_NODE_PORT ?? nodeConfigSchema.port.default));
        for (const probe of [c.readinessProbe, c.livenessProbe]) {
          assert.ok(probe && SERVED.node.has(probe.httpGet.path) && probe.httpGet.port === 'http', c.name);
        }
        assert.match(c.lifecycle?.preStop?.exec.command.join(' ') ?? '', /\/internal\/drain/);
        assert.ok(env.CHAT_NODE_ADVERTISED_URL?.includes(':8081'));
      } else {
        assert.equal(port('ws'), Number(env.CHAT_ROUTER_PORT ?? routerConfigSchema.port.default));
        assert.equal(
          port('admin'),
          Number(env.CHAT_ROUTER_ADMIN_PORT ?? routerConfigSchema.adminPort.default),
        );
        for (const probe of [c.readinessProbe, c.livenessProbe]) {
          assert.ok(
            probe && SERVED.routerPublic.has(probe.httpGet.path) && probe.httpGet.port === 'ws',
            c.name,
          );
        }
        assert.ok(env.CHAT_ROUTER_ADMIN_TOKEN, 'an admin listener off loopback needs its token');
      }
      // What the image runs exists in the source.
      const entry = (c.command ?? [])[1] ?? '';
      assert.ok(existsSync(join(repoRoot, entry.replace('/dist/', '/src/').replace(/\.js$/, '.ts'))), entry);
    }
  }
  for (const name of Object.keys(configMap)) assert.ok(KNOWN_ENV.has(name), `ConfigMap: unknown ${name}`);
});

test('the Dockerfile copies files that exist and runs the built entry points', () => {
  const dockerfile = read('deploy/Dockerfile');
  for (const line of dockerfile.split('\n').filter((l) => l.startsWith('COPY '))) {
    const sources = line
      .replace(/^COPY\s+/, '')
      .split(/\s+/)
      .slice(0, -1);
    for (const s of sources) assert.ok(existsSync(join(repoRoot, s)), `COPY ${s}`);
  }
  assert.match(dockerfile, /CMD \["node", "node\/dist\/main\.js"\]/);
  const tsconfig = JSON.parse(read('node/tsconfig.json')) as {
    compilerOptions: { outDir: string; rootDir: string };
  };
  assert.deepEqual([tsconfig.compilerOptions.rootDir, tsconfig.compilerOptions.outDir], ['src', 'dist']);
});
