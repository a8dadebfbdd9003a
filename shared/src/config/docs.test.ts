import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { test } from 'node:test';
import { renderConfigDocs } from './docs.js';
import { CONFIG_SCHEMAS } from './schemas.js';

test('docs/configuration.md is generated from the schemas and up to date (pnpm docs:gen)', async () => {
  const committed = await readFile(new URL('../../../docs/configuration.md', import.meta.url), 'utf8');
  assert.equal(committed, renderConfigDocs());
});

test('every field has documentation and a unique env name', () => {
  const owner = new Map<string, string>();
  for (const [component, schema] of Object.entries(CONFIG_SCHEMAS)) {
    for (const [key, field] of Object.entries(schema)) {
      assert.ok(
        field.doc.length > 10 && field.doc.endsWith('.'),
        `${component}.${key} needs a sentence of doc`,
      );
      const prev = owner.get(field.env);
      // The same field object may be shared (common settings spread into a service schema).
      assert.ok(prev === undefined || prev === key, `${field.env} is used by ${prev} and ${key}`);
      owner.set(field.env, key);
    }
  }
});
