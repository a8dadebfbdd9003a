// Starts one broker for a whole test run (tools/run-tests.mjs) and prints its address as one JSON line.
// The broker lives as long as this process: it is disposed when stdin closes (the runner finished or
// died) or on SIGTERM/SIGINT, so no JVM outlives the run.
import { KafkaBroker } from './broker.js';
import { kafkaVersion } from './maven.js';

const broker = await KafkaBroker.start({ log: (msg) => process.stderr.write(`kafka: ${msg}\n`) });
process.stdout.write(
  `${JSON.stringify({ brokers: broker.brokers, version: await kafkaVersion(), logFile: broker.logFile })}\n`,
);

let stopping = false;
async function shutdown(): Promise<void> {
  if (stopping) return;
  stopping = true;
  await broker.dispose();
  process.exit(0);
}
process.stdin.on('end', () => void shutdown());
process.stdin.on('error', () => void shutdown());
process.stdin.resume();
process.on('SIGTERM', () => void shutdown());
process.on('SIGINT', () => void shutdown());
