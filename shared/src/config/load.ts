import { ChatError } from '../errors.js';
import type { Field } from './fields.js';

/** A service's configuration schema: one field per setting. */
export type ConfigSchema = Readonly<Record<string, Field<unknown>>>;

/** The frozen value object a schema describes. */
export type ConfigOf<S extends ConfigSchema> = {
  readonly [K in keyof S]: S[K] extends Field<infer T> ? T : never;
};

export interface LoadOptions {
  /** Every `CHAT_*` name any component knows; others get a warning. Defaults to the schema's own. */
  readonly knownEnv?: ReadonlySet<string>;
  /** Receives one warning per unknown `CHAT_*` variable. */
  readonly warn?: (message: string, details: Record<string, unknown>) => void;
}

/**
 * Reads `schema` from `env`: unset or empty variables take the default; every invalid value is collected
 * and reported together in one CONFIG_ERR_INVALID error; the result is frozen. Unknown `CHAT_*`
 * variables (typos, settings of a removed version) are warned about, with the closest known name.
 */
export function loadConfig<S extends ConfigSchema>(
  schema: S,
  env: Readonly<Record<string, string | undefined>>,
  options: LoadOptions = {},
): ConfigOf<S> {
  const values: Record<string, unknown> = {};
  const problems: { env: string; value: string; problem: string }[] = [];
  for (const [key, spec] of Object.entries(schema)) {
    const raw = env[spec.env];
    if (raw === undefined || raw.trim() === '') {
      values[key] = spec.default;
      continue;
    }
    try {
      values[key] = spec.parse(raw);
    } catch (err) {
      problems.push({
        env: spec.env,
        value: spec.secret ? '[redacted]' : raw,
        problem: err instanceof Error ? err.message : String(err),
      });
    }
  }
  if (problems.length > 0) {
    const lines = problems.map((p) => `  ${p.env}=${JSON.stringify(p.value)}: ${p.problem}`);
    throw new ChatError(
      'CONFIG_ERR_INVALID',
      `invalid configuration (${problems.length} problem${problems.length > 1 ? 's' : ''}):\n${lines.join('\n')}`,
      { problems },
    );
  }

  const known = options.knownEnv ?? new Set(Object.values(schema).map((f) => f.env));
  if (options.warn) {
    for (const name of Object.keys(env)) {
      if (!name.startsWith('CHAT_') || known.has(name)) continue;
      const suggestion = closest(name, known);
      options.warn('unknown configuration variable ignored', {
        env: name,
        ...(suggestion ? { didYouMean: suggestion } : {}),
      });
    }
  }
  return Object.freeze(values) as ConfigOf<S>;
}

function closest(name: string, candidates: Iterable<string>): string | undefined {
  let best: string | undefined;
  let bestDistance = Infinity;
  for (const candidate of candidates) {
    const d = editDistance(name, candidate);
    if (d < bestDistance) {
      best = candidate;
      bestDistance = d;
    }
  }
  return bestDistance <= Math.max(2, Math.floor(name.length / 4)) ? best : undefined;
}

function editDistance(a: string, b: string): number {
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const row = [i];
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      row[j] = Math.min((prev[j] ?? 0) + 1, (row[j - 1] ?? 0) + 1, (prev[j - 1] ?? 0) + cost);
    }
    prev = row;
  }
  return prev[b.length] ?? 0;
}
