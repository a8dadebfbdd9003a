import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { LOG_EPOCH_KEY, decodeLogEpoch, encodeLogEpoch } from './records.js';

describe('log-epoch records', () => {
  test('round trip', () => {
    const record = encodeLogEpoch('k0123456789ab');
    assert.equal(record.key, LOG_EPOCH_KEY);
    assert.equal(decodeLogEpoch(record.value), 'k0123456789ab');
  });

  test('a malformed value throws (the bus skips and counts it)', () => {
    for (const value of [
      null,
      'not json',
      '{}',
      '{"v":2,"epoch":"k1"}',
      '{"v":1,"epoch":"bad epoch!"}',
      '[]',
    ])
      assert.throws(() => decodeLogEpoch(value), value ?? 'null');
  });
});
