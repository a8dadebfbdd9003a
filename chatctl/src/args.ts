import { CliError, EXIT } from './exit-codes.js';

/** The router admin API chatctl talks to when neither `--router` nor `CHAT_ROUTER_ADMIN_URL` says. */
export const DEFAULT_ROUTER = 'http://127.0.0.1:8090';

export const COMMANDS = ['status', 'plan', 'drain', 'undrain', 'lookup', 'shards'] as const;
export type CommandName = (typeof COMMANDS)[number];

/** Options every command takes; `value` ones take an argument. */
const GLOBAL: Record<string, 'value' | 'flag'> = {
  router: 'value',
  token: 'value',
  'token-file': 'value',
  timeout: 'value',
  json: 'flag',
  help: 'flag',
};

/** Each command's own options and how many positional arguments it takes. */
const SPECS: Record<
  CommandName,
  { options: Record<string, 'value' | 'flag'>; positionals: [number, number] }
> = {
  status: { options: { 'wait-version': 'value' }, positionals: [0, 0] },
  plan: { options: { weight: 'value' }, positionals: [2, 2] },
  drain: { options: { 'no-wait': 'flag' }, positionals: [1, 1] },
  undrain: { options: { 'no-wait': 'flag' }, positionals: [1, 1] },
  lookup: { options: { key: 'value' }, positionals: [0, 1] },
  shards: { options: { top: 'value', interval: 'value' }, positionals: [0, 0] },
};

/** A command line taken apart, before defaults from the environment are applied. */
export interface ParsedArgs {
  readonly command: CommandName | undefined;
  readonly positionals: readonly string[];
  /** Every option given; `--router` may repeat (all values kept, in order). */
  readonly options: ReadonlyMap<string, readonly (string | true)[]>;
}

/**
 * Splits argv into the command, its positional arguments and options (`--name value`, `--name=value`,
 * `-h`), accepting global options anywhere. Unknown commands and options, missing values and wrong
 * numbers of arguments are usage errors (exit 2), except with `--help`, which is always answered.
 */
export function parseArgs(argv: readonly string[]): ParsedArgs {
  let command: CommandName | undefined;
  const positionals: string[] = [];
  const options = new Map<string, (string | true)[]>();
  const add = (name: string, value: string | true) =>
    options.set(name, [...(options.get(name) ?? []), value]);
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i] ?? '';
    if (arg === '-h') {
      add('help', true);
      continue;
    }
    if (arg.startsWith('--')) {
      const eq = arg.indexOf('=');
      const name = eq === -1 ? arg.slice(2) : arg.slice(2, eq);
      const kind = GLOBAL[name] ?? (command ? SPECS[command].options[name] : undefined);
      if (kind === undefined) {
        throw new CliError(EXIT.usage, `unknown option --${name}${command ? ` for ${command}` : ''}`);
      }
      if (kind === 'flag') {
        if (eq !== -1) throw new CliError(EXIT.usage, `--${name} takes no value`);
        add(name, true);
        continue;
      }
      const value = eq === -1 ? argv[++i] : arg.slice(eq + 1);
      if (value === undefined || value === '') throw new CliError(EXIT.usage, `--${name} needs a value`);
      add(name, value);
      continue;
    }
    if (arg.startsWith('-') && arg !== '-') throw new CliError(EXIT.usage, `unknown option ${arg}`);
    if (command === undefined) {
      if (!(COMMANDS as readonly string[]).includes(arg)) {
        throw new CliError(EXIT.usage, `unknown command ${arg} (commands: ${COMMANDS.join(', ')})`);
      }
      command = arg as CommandName;
      continue;
    }
    positionals.push(arg);
  }
  if (command && !options.has('help')) {
    const [min, max] = SPECS[command].positionals;
    if (positionals.length < min || positionals.length > max) {
      throw new CliError(EXIT.usage, `${command}: wrong arguments (see chatctl ${command} --help)`);
    }
  }
  return { command, positionals, options };
}

/** The last value of an option given as a value (not a flag). */
export function valueOf(p: ParsedArgs, name: string): string | undefined {
  const last = p.options.get(name)?.at(-1);
  return typeof last === 'string' ? last : undefined;
}

export function flag(p: ParsedArgs, name: string): boolean {
  return p.options.has(name);
}

/** A whole number within bounds, else a usage error naming the option. */
export function intOption(p: ParsedArgs, name: string, min: number, max: number): number | undefined {
  const raw = valueOf(p, name);
  if (raw === undefined) return undefined;
  const n = Number(raw);
  if (!/^\d+$/.test(raw) || n < min || n > max) {
    throw new CliError(EXIT.usage, `--${name} must be a whole number from ${min} to ${max}, got ${raw}`);
  }
  return n;
}

/**
 * The routers to ask: every `--router` given, else `CHAT_ROUTER_ADMIN_URL` (a comma-separated list),
 * else http://127.0.0.1:8090. Each must be an http(s) URL.
 */
export function routersOf(p: ParsedArgs, env: Readonly<Record<string, string | undefined>>): string[] {
  const given = (p.options.get('router') ?? []).filter((v): v is string => typeof v === 'string');
  const fromEnv = (env.CHAT_ROUTER_ADMIN_URL ?? '')
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
  const routers = given.length > 0 ? given : fromEnv.length > 0 ? fromEnv : [DEFAULT_ROUTER];
  for (const r of routers) {
    let url: URL | undefined;
    try {
      url = new URL(r);
    } catch {
      url = undefined;
    }
    if (!url || (url.protocol !== 'http:' && url.protocol !== 'https:')) {
      throw new CliError(EXIT.usage, `--router ${r} is not an http(s) URL (e.g. ${DEFAULT_ROUTER})`);
    }
  }
  return routers;
}

/** The token: `--token`, else the contents of `--token-file` (trimmed), else `CHAT_ROUTER_ADMIN_TOKEN`. */
export function tokenOf(
  p: ParsedArgs,
  env: Readonly<Record<string, string | undefined>>,
  readFile: (path: string) => string,
): string | undefined {
  const token = valueOf(p, 'token');
  if (token !== undefined) return token;
  const file = valueOf(p, 'token-file');
  if (file !== undefined) {
    try {
      return readFile(file).trim();
    } catch (err) {
      throw new CliError(
        EXIT.usage,
        `--token-file ${file}: ${(err as NodeJS.ErrnoException).code ?? 'unreadable'}`,
      );
    }
  }
  return env.CHAT_ROUTER_ADMIN_TOKEN || undefined;
}
