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

/** A listener an entry point opens, with the variable that sets its port (for `describeListenError`). */
export interface ListenerSetting {
  /** Env name of the port setting, e.g. `CHAT_ROUTER_PORT`. */
  readonly env: string;
  readonly host: string;
  readonly port: number;
}

const LISTEN_PROBLEMS: Readonly<Record<string, string>> = {
  EADDRINUSE: 'the port is already in use',
  EACCES: 'permission denied (ports below 1024 need privileges)',
  EADDRNOTAVAIL: 'the address is not on this machine',
};

/**
 * For entry points: when `err` is a failed `listen` (port taken, privileged port, foreign address) on one
 * of `listeners`, one line saying which address and which variable changes it; otherwise undefined.
 */
export function describeListenError(err: unknown, listeners: readonly ListenerSetting[]): string | undefined {
  if (!(err instanceof Error)) return undefined;
  const { code, syscall, port, address } = err as NodeJS.ErrnoException & { port?: number; address?: string };
  const problem = code === undefined ? undefined : LISTEN_PROBLEMS[code];
  if (syscall !== 'listen' || problem === undefined || port === undefined) return undefined;
  // Two listeners on one port differ by host; `address` is the resolved form, so match by port first.
  let matches = listeners.filter((l) => l.port === port);
  if (matches.length > 1) matches = matches.filter((l) => l.host === address);
  const names = matches.map((l) => l.env).join(' or ');
  const shown = address?.includes(':') ? `[${address}]:${port}` : `${address ?? ''}:${port}`;
  return (
    `cannot listen on ${shown}: ${problem} (${code})` +
    (names ? `; set ${names} to another port (0 picks a free one)` : '')
  );
}

/**
 * For entry points: on the first SIGINT or SIGTERM runs `stop` and exits with the code it resolves to (1 if
 * it throws). Repeats are ignored while stopping: Ctrl-C under `npm start` can reach a process twice (from
 * the terminal and passed on by its parent), and the second must not kill it mid-shutdown.
 */
export function exitOnSignal(stop: (signal: NodeJS.Signals) => Promise<number>): void {
  let stopping = false;
  const onSignal = (signal: NodeJS.Signals) => {
    if (stopping) return;
    stopping = true;
    stop(signal).then(
      (code) => process.exit(code),
      (err: unknown) => {
        console.error('shutdown failed:', err);
        process.exit(1);
      },
    );
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
}
