import { isChatError } from '../errors.js';
import { loadConfig, type ConfigOf, type ConfigSchema } from './load.js';
import { KNOWN_ENV } from './schemas.js';

/** Exit code of a process refused for its configuration (EX_CONFIG from sysexits.h). */
export const EXIT_CONFIG = 78;

/**
 * For entry points (main.ts) only: runs `f`; a CONFIG_ERR_INVALID it throws is printed with every problem
 * and ends the process with EXIT_CONFIG. Anything else is rethrown.
 */
export function orExitOnConfigError<T>(f: () => T): T {
  try {
    return f();
  } catch (err) {
    if (!isChatError(err, 'CONFIG_ERR_INVALID')) throw err;
    console.error(`${err.code}: ${err.message}`);
    process.exit(EXIT_CONFIG);
  }
}

/** Loads a service's configuration from `env`, warning (as a JSON log line) about unknown CHAT_* names. */
export function loadServiceConfig<S extends ConfigSchema>(
  schema: S,
  env: Readonly<Record<string, string | undefined>>,
): ConfigOf<S> {
  return loadConfig(schema, env, {
    knownEnv: KNOWN_ENV,
    warn: (msg, details) => console.warn(JSON.stringify({ level: 'warn', msg, ...details })),
  });
}
