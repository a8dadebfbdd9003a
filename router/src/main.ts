// Entry point of a router process: the only file that reads process.env, handles signals and sets the
// exit code. Exit codes: 0 clean shutdown, 1 failed start, 78 invalid configuration.
import { createLogger, isChatError, KNOWN_ENV, loadConfig, routerConfigSchema } from '@chat/shared';
import { createRouter } from './router.js';

const EXIT_CONFIG = 78;

let config;
try {
  config = loadConfig(routerConfigSchema, process.env, {
    knownEnv: KNOWN_ENV,
    warn: (msg, details) => console.warn(JSON.stringify({ level: 'warn', msg, ...details })),
  });
} catch (err) {
  if (!isChatError(err, 'CONFIG_ERR_INVALID')) throw err;
  console.error(`${err.code}: ${err.message}`);
  process.exit(EXIT_CONFIG);
}

const logger = createLogger({ name: 'router', level: config.logLevel });
let router;
try {
  router = createRouter(config, { logger });
} catch (err) {
  // Configuration that is valid field by field but not as a whole (no membership source, no key material,
  // an exposed admin listener without a token).
  console.error(`CONFIG_ERR_INVALID: ${isChatError(err) ? err.message : (err as Error).message}`);
  process.exit(EXIT_CONFIG);
}
const { port, adminPort } = await router.start().catch((err: unknown) => {
  logger.fatal({ err }, 'start failed');
  process.exit(1);
});
console.log(
  `router ready: ws://${config.host}:${port}/chat/{userId} (admin http://${config.adminHost}:${adminPort})`,
);
process.send?.({ type: 'ready', port, adminPort });

for (const signal of ['SIGTERM', 'SIGINT'] as const) {
  process.once(signal, () => {
    logger.info({ signal }, 'shutting down');
    router.stop().then(
      () => process.exit(0),
      (err: unknown) => {
        logger.error({ err }, 'shutdown failed');
        process.exit(1);
      },
    );
  });
}
