import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { test } from 'node:test';
import { ChatError, ERROR_CODES, isChatError } from './errors.js';

test('every error code is documented in docs/errors.md, and every documented code exists', async () => {
  const doc = await readFile(new URL('../../docs/errors.md', import.meta.url), 'utf8');
  const documented = new Set([...doc.matchAll(/^\| `([A-Z_]+)` \|/gm)].map((m) => m[1]));
  assert.deepEqual([...documented].sort(), Object.keys(ERROR_CODES).sort());
});

test('codes follow <AREA>_ERR_<NAME>', () => {
  for (const code of Object.keys(ERROR_CODES)) assert.match(code, /^[A-Z]+_ERR_[A-Z_]+$/);
});

test('ChatError carries code, retryability and frozen details', () => {
  const err = new ChatError('KAFKA_ERR_UNAVAILABLE', 'down', { brokers: ['a:1'] });
  assert.equal(err.retryable, true);
  assert.ok(Object.isFrozen(err.details));
  assert.ok(isChatError(err, 'KAFKA_ERR_UNAVAILABLE'));
  assert.equal(isChatError(err, 'CONFIG_ERR_INVALID'), false);
  assert.equal(isChatError(new Error('x')), false);
});
