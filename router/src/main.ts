// Entry point of a router process: the only file that reads process.env, handles signals and sets the
// exit code. Exit codes: 0 clean shutdown, 1 failed start, 78 invalid configuration (Kafka credentials
// refused included).
import {
  createLogger,
  describeListenError,
  exitOnSignal,
  isChatError,
  loadServiceConfig,
  orExitOnConfigError,
  routerConfigSchema,
} from '@chat/shared';
import { createRouter } from './router.js';

const config = orExitOnConfigError(() => loadServiceConfig(routerConfigSchema, process.env));
const logger = createLogger({ name: 'router', level: config.logLevel });
// Also refused here: settings valid one by one but not together (no membership source, no key material,
// an admin listener off loopback without a token).
const router = orExitOnConfigError(() => createRouter(config, { logger }));
const { port, adminPort } = await router.start().catch((err: unknown) => {
  // A taken port is a setting to change, not a crash: one line naming the variable, no stack trace.
  const line = describeListenError(err, [
    { env: 'CHAT_ROUTER_PORT', host: config.host, port: config.port },
    { env: 'CHAT_ROUTER_ADMIN_PORT', host: config.adminHost, port: config.adminPort },
  ]);
  if (line) {
    logger.fatal({ code: (err as NodeJS.ErrnoException).code }, 'listen failed');
    console.error(`router: ${line}`);
  } else logger.fatal({ err }, 'start failed');
  // Kafka refused the credentials (or another setting that does not fit the cluster): one line, exit 78.
  if (isChatError(err, 'CONFIG_ERR_INVALID')) {
    console.error(`router: ${err.code}: ${err.message}`);
    process.exit(78);
  }
  process.exit(1);
});
// Handlers before the ready line: whoever reads it may signal at once.
exitOnSignal(async (signal) => {
  logger.info({ signal }, 'shutting down');
  try {
    await router.stop();
    return 0;
  } catch (err) {
    logger.error({ err }, 'shutdown failed');
    return 1;
  }
});
console.log(
  `router ready: ws://${config.host}:${port}/chat/{userId} (admin http://${config.adminHost}:${adminPort})`,
);
process.send?.({ type: 'ready', port, adminPort });
