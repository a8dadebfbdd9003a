// `pnpm chaos`: the chaos suite. Every scenario (scenarios.ts) from a fresh cluster under load, on one real
// Kafka broker of this run's own; one report in docs/reliability.md. A script, not a test: nothing is
// asserted here (reliability.test.ts asserts a short subset in CI); what fails is reported, never hidden.
//   pnpm chaos [--scenarios kill9,sigterm,...] [--out docs/reliability.md] [--users 120] [--groups 12]
//              [--rate 200] [--cross 0.3] [--churn 1] [--warmup 5] [--after 4] [--shards N] [--node-env K=V,K=V]
//              [--mode fast,durable]   (both by default, one after the other, one report; durable:
//                                       CHAT_NODE_DELIVERY_MODE=durable, and the load client resumes from its
//                                       last position on every reconnect)
//              [--merge]               (put this run's scenarios into the existing report, same modes: their
//                                       rows and sections replace those of the same name or are added; the
//                                       other scenarios keep their figures; see merge-report.ts)
// Exit code: 0 when every scenario ran (whatever it counted), 1 when one could not run, 2 on the hard limit.
import { mkdtempSync, readFileSync, writeFileSync, appendFileSync } from 'node:fs';
import { cpus, loadavg, tmpdir, totalmem } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { nodeConfigSchema } from '@chat/shared';
import { KafkaBroker } from '../kafka/broker.js';
import { kafkaVersion } from '../kafka/maven.js';
import { repoRoot } from '../paths.js';
import { closeAllScopes } from './cluster.js';
import { mergeScenarios } from './merge-report.js';
import { mergeReports, renderReport } from './report.js';
import { DEFAULT_OPTIONS, runScenario, type ScenarioOptions, type ScenarioResult } from './run-scenario.js';
import { pickScenarios } from './scenarios.js';

const { values } = parseArgs({
  options: {
    scenarios: { type: 'string', default: '' },
    out: { type: 'string', default: 'docs/reliability.md' },
    users: { type: 'string', default: String(DEFAULT_OPTIONS.users) },
    groups: { type: 'string', default: String(DEFAULT_OPTIONS.groups) },
    rate: { type: 'string', default: String(DEFAULT_OPTIONS.ratePerSec) },
    cross: { type: 'string', default: String(DEFAULT_OPTIONS.crossShare) },
    churn: { type: 'string', default: String(DEFAULT_OPTIONS.churnPerSec) },
    warmup: { type: 'string', default: String(DEFAULT_OPTIONS.warmupMs / 1000) },
    after: { type: 'string', default: String(DEFAULT_OPTIONS.afterMs / 1000) },
    shards: { type: 'string', default: '' },
    'node-env': { type: 'string', default: '' },
    mode: { type: 'string', default: 'fast,durable' },
    merge: { type: 'boolean', default: false },
  },
});

const RUN_DIR = mkdtempSync(join(tmpdir(), 'chat-chaos-'));
const LOG_FILE = join(RUN_DIR, 'chaos.log');
const log = (msg: string) => {
  const line = `[${new Date().toISOString().slice(11, 19)}] ${msg}`;
  process.stderr.write(`chaos: ${line}\n`);
  appendFileSync(LOG_FILE, `${line}\n`);
};

const nodeEnv: Record<string, string> = Object.fromEntries(
  String(values['node-env'])
    .split(',')
    .filter(Boolean)
    .map((kv) => [kv.slice(0, kv.indexOf('=')), kv.slice(kv.indexOf('=') + 1)]),
);
const modes = String(values.mode)
  .split(',')
  .filter(Boolean)
  .map((m) => {
    if (m !== 'fast' && m !== 'durable') throw new Error(`--mode: fast or durable, not ${m}`);
    return m;
  });
const shards = values.shards ? Number(values.shards) : undefined;
const options: ScenarioOptions = {
  ...DEFAULT_OPTIONS,
  users: Number(values.users),
  groups: Number(values.groups),
  ratePerSec: Number(values.rate),
  crossShare: Number(values.cross),
  churnPerSec: Number(values.churn),
  warmupMs: Number(values.warmup) * 1000,
  afterMs: Number(values.after) * 1000,
  ...(shards ? { shards } : {}),
  ...(Object.keys(nodeEnv).length ? { nodeEnv } : {}),
  log,
};
/** The options of one mode's runs (durable: the nodes in durable mode, the load client resuming). */
const optionsOf = (mode: 'fast' | 'durable'): ScenarioOptions =>
  mode === 'durable'
    ? { ...options, nodeEnv: { ...nodeEnv, CHAT_NODE_DELIVERY_MODE: 'durable' }, resume: true }
    : options;
const out = resolve(repoRoot, String(values.out));
/** The report this run's scenarios are merged into (`--merge`), read before the run so a missing one fails at once. */
const existing = values.merge ? readFileSync(out, 'utf8') : undefined;
const scenarios = pickScenarios(String(values.scenarios).split(',').filter(Boolean));
const args = process.argv.slice(2).join(' ');

let broker: KafkaBroker | undefined;
/** Every scenario's processes, then the broker. */
async function stopEverything(): Promise<void> {
  await closeAllScopes();
  await broker?.dispose();
}
// Hard bound on the whole run: whatever hangs, the broker (and through each scenario's scope, every
// process) is stopped.
const HARD_LIMIT_MS = 20 * 60_000;
const watchdog = setTimeout(() => {
  log('hard time limit reached: stopping everything');
  void stopEverything().finally(() => process.exit(2));
}, HARD_LIMIT_MS);
watchdog.unref();
for (const signal of ['SIGINT', 'SIGTERM'] as const)
  process.once(signal, () => {
    log(`${signal}: stopping`);
    void stopEverything().finally(() => process.exit(130));
  });

function machine(version: string): string {
  const model = cpus()[0]?.model.split(' ').slice(0, 2).join(' ') ?? 'unknown CPU';
  return `nproc ${cpus().length} (${model}), ${Math.round(totalmem() / 2 ** 30)} GiB, Node ${process.version}, Apache Kafka ${version} (one broker, KRaft, acks=all). Shared with other work: load average ${loadavg()[0]?.toFixed(2)} at the start. The load client, the services and the broker share the same cores; 127.0.0.1 only; authentication off.`;
}

/** The report as the repository's Prettier settings write it (so `pnpm format:check` passes), else as is. */
async function formatted(markdown: string, path: string): Promise<string> {
  try {
    const prettier = await import('prettier');
    const config = (await prettier.resolveConfig(path)) ?? {};
    return await prettier.format(markdown, { ...config, filepath: path });
  } catch (err) {
    log(`report left unformatted: ${(err as Error).message}`);
    return markdown;
  }
}

const startedAt = new Date();
const resultsOf = new Map<'fast' | 'durable', ScenarioResult[]>(modes.map((m) => [m, []]));
log(
  `run directory ${RUN_DIR}; modes ${modes.join(', ')}; scenarios ${scenarios.map((s) => s.name).join(', ')}`,
);
const machineLine = machine(await kafkaVersion());
try {
  broker = await KafkaBroker.start({ log });
  const kafka = { brokers: broker.brokers, broker };
  for (const [mode, results] of resultsOf) {
    for (const scenario of scenarios) {
      log(`scenario ${scenario.name} (${mode} mode): ${scenario.title}`);
      const result = await runScenario(kafka, scenario, optionsOf(mode));
      results.push(result);
      const c = result.counts;
      log(
        `scenario ${scenario.name} (${mode} mode) done in ${(result.durationMs / 1000).toFixed(0)} s: ${
          c
            ? `written ${c.written}, lost after accepted ${c.lostAccepted}, after delivered ${c.lostDelivered}, duplicates ${c.duplicates}, offline (recent session) ${c.offlineRecent}, errors ${JSON.stringify(c.errors)}, closes ${JSON.stringify(c.closes)}`
            : 'no counts'
        }${result.error ? `; FAILED: ${result.error}` : ''}; logs: ${result.logFiles.join(' ')}`,
      );
    }
  }
} finally {
  await broker?.dispose();
}
const durationS = (Date.now() - startedAt.getTime()) / 1000;
const reports = [...resultsOf].map(([mode, results]) =>
  renderReport({
    command: `pnpm chaos${args ? ` ${args}` : ''}`,
    startedAt,
    durationS,
    machine: `${machineLine.replace(/ at the start\./, ` at the start, ${loadavg()[0]?.toFixed(2)} at the end.`)}`,
    options: optionsOf(mode),
    graceMs: Number(nodeEnv.CHAT_NODE_PRESENCE_GRACE_MS ?? nodeConfigSchema.presenceGraceMs.default),
    shards: shards ?? nodeConfigSchema.clusterShards.default,
    results,
    ...(modes.length > 1 ? { mode } : {}),
  }),
);
let report = mergeReports(reports);
if (existing !== undefined) {
  try {
    report = mergeScenarios(
      existing,
      report,
      scenarios.map((s) => s.name),
    );
  } catch (err) {
    // The run's figures are not lost: its own report goes beside the log.
    const own = join(RUN_DIR, 'reliability.md');
    writeFileSync(own, report);
    log(`--merge: ${(err as Error).message}; this run's report is in ${own}`);
    process.exit(1);
  }
}
const results = [...resultsOf.values()].flat();
writeFileSync(out, await formatted(report, out));
log(
  `wrote ${out} (${readFileSync(out, 'utf8').length} characters) in ${durationS.toFixed(0)} s; log ${LOG_FILE}`,
);
process.exitCode = results.some((r) => r.error !== undefined || !r.counts) ? 1 : 0;
