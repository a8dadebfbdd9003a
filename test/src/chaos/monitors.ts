// Monitors for chaos tests: they poll a process's HTTP endpoint on a fixed period and keep a timeline, so
// a test can say afterwards when something changed (not just whether it did).
import { setTimeout as delay } from 'node:timers/promises';

/** One observation of a polled endpoint: when, and what it said (a number, or -1 for no answer). */
export interface Sample {
  readonly at: number;
  readonly value: number;
}

/**
 * Polls `read` every `periodMs` (each poll starts `periodMs` after the previous one started, or at once
 * when the previous one took longer) until `signal` aborts; keeps every sample. A read that throws or
 * takes longer than `periodMs * 10` counts as -1.
 */
export function startSampler(
  read: (signal: AbortSignal) => Promise<number>,
  periodMs: number,
  signal: AbortSignal,
): { readonly samples: Sample[]; readonly done: Promise<void> } {
  const samples: Sample[] = [];
  const done = (async () => {
    while (!signal.aborted) {
      const started = Date.now();
      const value = await read(AbortSignal.any([signal, AbortSignal.timeout(periodMs * 10)])).catch(() => -1);
      if (signal.aborted) break;
      samples.push({ at: Date.now(), value });
      const wait = started + periodMs - Date.now();
      if (wait > 0) await delay(wait, undefined, { signal }).catch(() => undefined);
    }
  })();
  return { samples, done };
}

/** The samples where the value changed (the first sample included): the transitions. */
export function transitions(samples: readonly Sample[]): Sample[] {
  return samples.filter((s, i) => i === 0 || s.value !== samples[i - 1]?.value);
}

/** The first sample at or after `from` whose value satisfies `match`. */
export function firstAfter(
  samples: readonly Sample[],
  from: number,
  match: (value: number) => boolean,
): Sample | undefined {
  return samples.find((s) => s.at >= from && match(s.value));
}

/** The `p` quantile (0..1) of `values` (nearest rank); NaN when empty. */
export function quantile(values: readonly number[], p: number): number {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(p * sorted.length) - 1))] ?? Number.NaN;
}

/** Prints `rows` as an aligned two-column table under `title` (test output). */
export function printTable(title: string, rows: readonly (readonly [string, string | number])[]): void {
  const width = Math.max(...rows.map(([k]) => k.length));
  const lines = rows.map(([k, v]) => `  ${k.padEnd(width)}  ${v}`);
  console.log(`\n${title}\n${lines.join('\n')}\n`);
}
