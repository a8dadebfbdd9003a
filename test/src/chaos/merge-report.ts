// `pnpm chaos --merge`: puts the results of a run of some scenarios into an existing docs/reliability.md
// instead of replacing it, so a new or changed scenario can be reported without running the whole suite
// (about 10 minutes) again. Each of the run's rows and scenario sections replaces the one of the same name
// (or is added at the end of its table or section); the other scenarios keep the figures of their run, and
// each results section says which rows came from which run.
import { IN_CI } from './report.js';

/** Thrown when the existing report does not have the run's sections (another set of modes). */
export class MergeError extends Error {}

/** Index of the line that is exactly `heading`, or -1. */
const find = (lines: readonly string[], heading: string, from = 0): number =>
  lines.findIndex((l, i) => i >= from && l.trim() === heading);

/** Index of the next `## ` heading (or the end) after `from`. */
const sectionEnd = (lines: readonly string[], from: number): number => {
  const next = lines.findIndex((l, i) => i > from && l.startsWith('## '));
  return next === -1 ? lines.length : next;
};

/** The scenario name of a results-table row (its first cell), or undefined for other lines. */
const rowName = (line: string): string | undefined =>
  line.startsWith('|') ? line.split('|')[1]?.trim() : undefined;

/** The scenario name of a `### name (mode)` or `### name` heading. */
const sectionName = (line: string): string | undefined =>
  line.startsWith('### ')
    ? line
        .slice(4)
        .replace(/ \([a-z]+\)$/, '')
        .trim()
    : undefined;

const LATER = 'Rows from a later run';
const OVER_EVERY = 'Over every scenario:';

/**
 * The existing report with the fresh one's scenarios merged in (both as rendered by report.ts for the same
 * modes). `names` are the scenarios the fresh run ran.
 */
export function mergeScenarios(existing: string, fresh: string, names: readonly string[]): string {
  const out = existing.split('\n');
  const src = fresh.split('\n');
  const command = src.find((l) => l.startsWith('Command: '))?.slice('Command: '.length) ?? '';
  const machine = src.find((l) => l.startsWith('Machine: '))?.slice('Machine: '.length) ?? '';
  // The header comment says how the file is written (from one run, or merged).
  const comment = src.find((l) => l.startsWith('<!-- Written by'));
  const commentAt = out.findIndex((l) => l.startsWith('<!-- Written by'));
  if (comment && commentAt !== -1) out[commentAt] = comment;
  // So does the paragraph on the CI subset (the current suite's, before the first results section).
  const ci = src.find((l) => l.startsWith(IN_CI));
  const ciAt = out.findIndex((l) => l.startsWith(IN_CI));
  if (ci && ciAt !== -1) out[ciAt] = ci;
  else if (ci) {
    const first = out.findIndex((l) => l.startsWith('## Results'));
    if (first !== -1) out.splice(first, 0, ci, '');
  }
  const headings = src.filter((l) => l.startsWith('## Results') || l.startsWith('## Scenarios'));
  if (headings.length === 0) throw new MergeError('the fresh report has no results section');
  for (const heading of headings) {
    const at = find(out, heading);
    if (at === -1)
      throw new MergeError(
        `the existing report has no "${heading}" (run with the modes it was written with, or without --merge)`,
      );
    const srcAt = find(src, heading);
    const srcBody = src.slice(srcAt + 1, sectionEnd(src, srcAt));
    if (heading.startsWith('## Results')) mergeRows(out, at, srcBody, names, command, machine);
    else mergeSections(out, at, srcBody, names);
  }
  return out.join('\n');
}

/** Replaces or appends the run's table rows, and says in the section which run they come from. */
function mergeRows(
  out: string[],
  at: number,
  srcBody: readonly string[],
  names: readonly string[],
  command: string,
  machine: string,
): void {
  const end = sectionEnd(out, at);
  for (const row of srcBody.filter((l) => names.includes(rowName(l) ?? ''))) {
    const name = rowName(row);
    const same = out.findIndex((l, i) => i > at && i < end && rowName(l) === name);
    if (same !== -1) out[same] = row;
    else {
      let last = -1;
      for (let i = at + 1; i < sectionEnd(out, at); i++) if (out[i]?.startsWith('|')) last = i;
      if (last === -1) throw new MergeError('the existing results section has no table');
      out.splice(last + 1, 0, row);
    }
  }
  // The summary sentence of the existing run covers its own rows only from now on.
  const over = out.findIndex((l, i) => i > at && i < sectionEnd(out, at) && l.startsWith(OVER_EVERY));
  if (over !== -1) out[over] = (out[over] ?? '').replace(OVER_EVERY, 'Over every scenario of that run:');
  const fresh = srcBody.find((l) => l.startsWith(OVER_EVERY)) ?? '';
  const line = `${LATER} (${names.join(', ')}): ${command} Machine: ${machine} ${fresh.replace(OVER_EVERY, 'Over those scenarios:')}`;
  const previous = out.findIndex((l, i) => i > at && i < sectionEnd(out, at) && l.startsWith(LATER));
  if (previous !== -1 && names.every((n) => out[previous]?.includes(n))) out[previous] = line;
  else out.splice((over === -1 ? at : over) + 1, 0, '', line);
}

/** Replaces or appends the run's `### name` sections. */
function mergeSections(
  out: string[],
  at: number,
  srcBody: readonly string[],
  names: readonly string[],
): void {
  for (const name of names) {
    const start = srcBody.findIndex((l) => sectionName(l) === name);
    if (start === -1) continue;
    let stop = srcBody.findIndex((l, i) => i > start && l.startsWith('### '));
    if (stop === -1) stop = srcBody.length;
    const block = srcBody.slice(start, stop);
    while (block.length > 0 && block[block.length - 1] === '') block.pop();
    block.push('');
    const end = sectionEnd(out, at);
    const same = out.findIndex((l, i) => i > at && i < end && sectionName(l) === name);
    if (same !== -1) {
      let sameEnd = out.findIndex((l, i) => i > same && (l.startsWith('### ') || l.startsWith('## ')));
      if (sameEnd === -1) sameEnd = out.length;
      out.splice(same, sameEnd - same, ...block);
    } else out.splice(end, 0, ...block);
  }
}
