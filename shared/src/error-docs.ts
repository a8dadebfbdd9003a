import { ERROR_CODES } from './errors.js';

/** Renders docs/errors.md from ERROR_CODES; a test checks the committed file matches. */
export function renderErrorDocs(): string {
  const out = [
    '# Error codes',
    '',
    '<!-- Generated from shared/src/errors.ts by `pnpm docs:gen`; do not edit by hand. -->',
    '',
    'Every error the cluster reports (error frames, HTTP bodies, logs, thrown `ChatError`s) carries one of',
    'these stable codes. `Retryable` says whether sending the same thing again later can succeed.',
    '',
    '| Code | Retryable | Meaning |',
    '| --- | --- | --- |',
  ];
  for (const [code, spec] of Object.entries(ERROR_CODES)) {
    out.push(`| \`${code}\` | ${spec.retryable ? 'yes' : 'no'} | ${spec.summary} |`);
  }
  out.push('');
  return out.join('\n');
}
