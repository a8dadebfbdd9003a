// `pnpm kafka:start | kafka:stop | kafka:status`: a local Kafka broker for running the cluster by hand.
// State lives in .kafka/ at the repository root (broker.json, data, broker.log).
import { existsSync, readFileSync } from 'node:fs';
import { mkdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { isChatError } from '@chat/shared';
import { KafkaBroker, stopProcess, waitForKafka, type KafkaBrokerState } from './kafka/broker.js';
import { kafkaVersion, writeFileAtomic } from './kafka/maven.js';
import { portInUse } from './net.js';
import { repoRoot } from './paths.js';

const stateDir = join(repoRoot, '.kafka');
const stateFile = join(stateDir, 'broker.json');
const DEFAULT_PORT = 9092;

function readState(): KafkaBrokerState | undefined {
  if (!existsSync(stateFile)) return undefined;
  return JSON.parse(readFileSync(stateFile, 'utf8')) as KafkaBrokerState;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

async function start(): Promise<void> {
  const existing = readState();
  if (existing && alive(existing.pid)) {
    console.log(`Kafka already running: CHAT_KAFKA_BROKERS=${existing.brokers} (pid ${existing.pid})`);
    return;
  }
  await rm(stateDir, { recursive: true, force: true });
  await mkdir(stateDir, { recursive: true });
  const port = (await portInUse(DEFAULT_PORT)) ? undefined : DEFAULT_PORT;
  const broker = await KafkaBroker.start({
    dir: stateDir,
    detached: true,
    ...(port === undefined ? {} : { port }),
    log: (msg) => console.error(msg),
  });
  await writeFileAtomic(stateFile, JSON.stringify(broker.state(), null, 2));
  console.log(`Apache Kafka ${await kafkaVersion()} is running. Use it with:`);
  console.log(`  export CHAT_KAFKA_BROKERS=${broker.brokers}`);
  console.log(`Log: ${broker.logFile}. Stop it with: pnpm kafka:stop`);
}

async function stop(): Promise<void> {
  const state = readState();
  if (!state || !alive(state.pid)) {
    console.log('Kafka is not running');
  } else {
    await stopProcess(state.pid, 20_000);
    console.log(`Kafka (pid ${state.pid}) stopped`);
  }
  await rm(stateDir, { recursive: true, force: true });
}

async function status(): Promise<void> {
  const state = readState();
  if (!state || !alive(state.pid)) {
    console.log('Kafka is not running');
    process.exitCode = 1;
    return;
  }
  await waitForKafka(state.brokers, 5000);
  console.log(
    `Kafka is running: CHAT_KAFKA_BROKERS=${state.brokers} (pid ${state.pid}, log ${state.logFile})`,
  );
}

const commands: Record<string, () => Promise<void>> = { start, stop, status };
const command = commands[process.argv[2] ?? ''];
if (!command) {
  console.error('usage: kafka-cli start|stop|status');
  process.exit(64);
}
try {
  await command();
} catch (err) {
  if (isChatError(err)) {
    console.error(`${err.code}: ${err.message}`);
    console.error(JSON.stringify(err.details, null, 2));
  } else {
    console.error(err);
  }
  process.exit(1);
}
