// Reading the deploy files for the tests of test/src/deploy/: the Kubernetes documents, compose's
// variable interpolation, and the settings check both use.
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseAllDocuments } from 'yaml';
import { KNOWN_ENV, loadConfig, nodeConfigSchema, routerConfigSchema } from '@chat/shared';
import { repoRoot } from '../paths.js';

export const read = (path: string): string => readFileSync(join(repoRoot, path), 'utf8');

export type Env = Record<string, string>;

/** Checks names and, for literal values, validity under the service's schema. */
export function checkEnv(where: string, env: Env, service: 'node' | 'router'): void {
  for (const name of Object.keys(env)) {
    if (name.startsWith('CHAT_')) assert.ok(KNOWN_ENV.has(name), `${where}: unknown setting ${name}`);
  }
  const literal = Object.fromEntries(
    Object.entries(env).filter(([, v]) => !v.includes('$(') && !v.includes('${')),
  );
  assert.doesNotThrow(
    () => loadConfig(service === 'node' ? nodeConfigSchema : routerConfigSchema, literal),
    `${where}: invalid values`,
  );
}

export interface K8sDoc {
  kind: string;
  metadata: { name: string; namespace?: string; labels?: Env; annotations?: Env };
  data?: Env;
  spec?: Record<string, unknown>;
}

/** Every document of every file in deploy/k8s/. */
export function k8sDocs(): K8sDoc[] {
  return readdirSync(join(repoRoot, 'deploy/k8s'))
    .sort()
    .flatMap((f) => parseAllDocuments(read(`deploy/k8s/${f}`)).map((d) => d.toJS() as K8sDoc));
}

export interface Probe {
  httpGet: { path: string; port: string };
  periodSeconds?: number;
  failureThreshold?: number;
}

export interface Container {
  name: string;
  image: string;
  command?: string[];
  ports?: { name: string; containerPort: number }[];
  env?: {
    name: string;
    value?: string;
    valueFrom?: { secretKeyRef?: { name: string; key: string }; fieldRef?: unknown };
  }[];
  volumeMounts?: { name: string; mountPath: string; readOnly?: boolean }[];
  startupProbe?: Probe;
  readinessProbe?: Probe;
  livenessProbe?: Probe;
  lifecycle?: { preStop?: { exec: { command: string[] } } };
  securityContext?: {
    allowPrivilegeEscalation?: boolean;
    privileged?: boolean;
    readOnlyRootFilesystem?: boolean;
    capabilities?: { drop?: string[]; add?: string[] };
  };
  resources?: { requests?: Env; limits?: Env };
}

export interface PodSpec {
  automountServiceAccountToken?: boolean;
  securityContext?: {
    runAsNonRoot?: boolean;
    runAsUser?: number;
    fsGroup?: number;
    seccompProfile?: { type: string };
  };
  topologySpreadConstraints?: { topologyKey: string; labelSelector: { matchLabels: Env } }[];
  containers: Container[];
  volumes?: {
    name: string;
    secret?: { secretName: string; defaultMode?: number; items?: { key: string; path: string }[] };
  }[];
}

export interface Workload extends K8sDoc {
  spec: {
    template: { metadata: { labels: Env }; spec: PodSpec };
    serviceName?: string;
    minReadySeconds?: number;
  };
}

export function workloads(docs: K8sDoc[]): Workload[] {
  return docs.filter((d): d is Workload => d.kind === 'Deployment' || d.kind === 'StatefulSet');
}

/**
 * Compose's interpolation of `${NAME}`, `${NAME:-default}`, `${NAME-default}`, `${NAME:?message}` and
 * `${NAME?message}` (docs.docker.com/reference/compose-file/interpolation); `$$` is a literal `$`.
 * Throws `message` like compose does when a required variable is unset (or empty, with `:?`).
 */
export function interpolate(text: string, env: Env): string {
  return text.replace(
    /\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?)([-?])([^}]*))?\}/g,
    (whole, name: string | undefined, colon: string, op: string | undefined, arg: string) => {
      if (whole === '$$') return '$';
      const value = env[name ?? ''];
      const missing = value === undefined || (colon === ':' && value === '');
      if (op === '?' && missing) throw new Error(`required variable ${name} is missing a value: ${arg}`);
      if (op === '-' && missing) return arg;
      return value ?? '';
    },
  );
}
