import type { Field } from './fields.js';
import { CONFIG_SCHEMAS, TOOL_ENV } from './schemas.js';

function formatDefault(field: Field<unknown>): string {
  const value = field.default;
  if (Array.isArray(value)) return value.length === 0 ? '(empty)' : `\`${value.join(',')}\``;
  if (value === '') return '(empty)';
  return `\`${String(value)}\``;
}

const TITLES: Record<keyof typeof CONFIG_SCHEMAS, string> = {
  common: 'Every process',
  node: 'Chat node (`node/`)',
  router: 'Router (`router/`)',
};

/** Renders docs/configuration.md from the schemas; a test checks the committed file matches. */
export function renderConfigDocs(): string {
  const out = [
    '# Configuration',
    '',
    '<!-- Generated from shared/src/config/schemas.ts by `pnpm docs:gen`; do not edit by hand. -->',
    '',
    'Every setting is an environment variable. Unset or empty means the default. All invalid values are',
    'reported together at start-up (error code `CONFIG_ERR_INVALID`) and the process exits with status 78;',
    'unknown `CHAT_*` variables are logged as a warning with the closest known name.',
    '',
  ];
  for (const [component, schema] of Object.entries(CONFIG_SCHEMAS)) {
    const seen =
      component === 'common'
        ? new Set<string>()
        : new Set(Object.values(CONFIG_SCHEMAS.common).map((f) => f.env));
    out.push(`## ${TITLES[component as keyof typeof CONFIG_SCHEMAS]}`, '');
    if (component !== 'common') out.push('Also reads every setting of the first table.', '');
    out.push('| Variable | Default | Accepts | Meaning |', '| --- | --- | --- | --- |');
    for (const field of Object.values(schema) as Field<unknown>[]) {
      if (seen.has(field.env)) continue;
      out.push(`| \`${field.env}\` | ${formatDefault(field)} | ${field.accepts} | ${field.doc} |`);
    }
    out.push('');
  }
  out.push(
    '## Tools',
    '',
    'Read by the tools, not by the services (which know these names and do not warn about them).',
    '',
    '| Variable | Read by | Meaning |',
    '| --- | --- | --- |',
    ...Object.entries(TOOL_ENV).map(([env, t]) => `| \`${env}\` | ${t.tool} | ${t.doc} |`),
    '',
  );
  return out.join('\n');
}
