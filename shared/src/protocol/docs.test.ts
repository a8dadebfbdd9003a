import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { test } from 'node:test';
import { CLOSE_CODES } from './close-codes.js';
import { renderProtocolDocs } from './docs.js';

test('docs/protocol.md is generated from the schemas and up to date (pnpm docs:gen)', async () => {
  const committed = await readFile(new URL('../../../docs/protocol.md', import.meta.url), 'utf8');
  assert.equal(committed, renderProtocolDocs());
});

test('close codes are standard (1000-1015) or application (4000-4999) and unique', () => {
  const codes = Object.values(CLOSE_CODES).map((c) => c.code);
  assert.equal(new Set(codes).size, codes.length);
  for (const code of codes)
    assert.ok((code >= 1000 && code <= 1015) || (code >= 4000 && code <= 4999), String(code));
});
