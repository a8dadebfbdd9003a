// Entry point of a router process: the only file that reads process.env, handles signals and sets the
// exit code. Exit codes: 0 clean shutdown, 1 failed start, 78 invalid configuration.
import { createLogger, loadServiceConfig, orExitOnConfigError, routerConfigSchema } from '@chat/shared';
import { createRouter } from './router.js';

const config = orExitOnConfigError(() => loadServiceConfig(routerConfigSchema, process.env));
const logger = createLogger({ name: 'router', level: config.logLevel });
// Also refused here: settings valid one by one but not together (no membership source, no key material,
// an admin listener off loopback without a token).
const router = orExitOnConfigError(() => createRouter(config, { logger }));
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
