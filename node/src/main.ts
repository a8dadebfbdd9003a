// Entry point of a chat node process: the only file that reads process.env, handles signals and sets
// the exit code.
import { createLogger, isChatError, KNOWN_ENV, loadConfig, nodeConfigSchema } from '@chat/shared';
import { createChatNode } from './chat-node.js';

const EXIT_CONFIG = 78; // EX_CONFIG from sysexits.h

let config;
try {
  config = loadConfig(nodeConfigSchema, process.env, {
    knownEnv: KNOWN_ENV,
    warn: (msg, details) => console.warn(JSON.stringify({ level: 'warn', msg, ...details })),
  });
} catch (err) {
  if (!isChatError(err, 'CONFIG_ERR_INVALID')) throw err;
  console.error(`${err.code}: ${err.message}`);
  process.exit(EXIT_CONFIG);
}

const logger = createLogger({ name: 'node', level: config.logLevel, base: { nodeId: config.nodeId } });
const node = createChatNode(config, { logger });
const address = await node.start();
console.log(`chat node ${config.nodeId}: ws://${address.address}:${address.port}/chat/{userId}`);

for (const signal of ['SIGTERM', 'SIGINT'] as const) {
  process.once(signal, () => {
    logger.info({ signal }, 'stopping');
    node.stop().then(
      () => process.exit(0),
      (err: unknown) => {
        logger.error({ err }, 'stop failed');
        process.exit(1);
      },
    );
  });
}
