// Writes the generated reference docs (`pnpm docs:gen`). Tests fail when a committed file is stale.
import { writeFileSync } from 'node:fs';
import { renderConfigDocs } from '../config/docs.js';
import { renderErrorDocs } from '../error-docs.js';
import { renderProtocolDocs } from '../protocol/docs.js';

const docs: Record<string, string> = {
  'docs/configuration.md': renderConfigDocs(),
  'docs/errors.md': renderErrorDocs(),
  'docs/protocol.md': renderProtocolDocs(),
};
for (const [path, text] of Object.entries(docs)) {
  writeFileSync(new URL(`../../../${path}`, import.meta.url), text);
  console.log(`wrote ${path}`);
}
