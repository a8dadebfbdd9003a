// Signed directory records (issue 15, item 3): the MAC covers topic, key, signing time and value; a
// tampered field, another key, a missing or malformed header all fail; a rotation accepts a second key.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import {
  RECORD_MAC_HEADER,
  RECORD_TS_HEADER,
  RecordMac,
  canonicalRecord,
  deriveRecordKey,
} from './record-mac.js';

const SECRET = 'cluster-secret-for-the-unit-test-0001';
const OTHER = 'another-cluster-secret-for-the-test-02';
const TOPIC = 'chat.members';
const VALUE = JSON.stringify({ v: 1, id: 'n1', url: 'http://n1:8081', weight: 1 });

/** Kafka hands headers to consumers as Buffers. */
const asRead = (headers: Record<string, string>) =>
  Object.fromEntries(Object.entries(headers).map(([k, v]) => [k, Buffer.from(v)]));

describe('RecordMac', () => {
  test('a record signed by the cluster verifies as read from Kafka, with its signing time', () => {
    const mac = new RecordMac({ secret: SECRET, now: () => 1_700_000_000_000 });
    const headers = mac.sign(TOPIC, 'n1', VALUE);
    assert.equal(headers[RECORD_TS_HEADER], '1700000000000');
    assert.deepEqual(mac.verify(TOPIC, 'n1', Buffer.from(VALUE), asRead(headers)), {
      ok: true,
      ts: 1_700_000_000_000,
    });
    // A tombstone is signed too (a forged one would take a member out of every ring).
    const tomb = mac.sign(TOPIC, 'n1', null);
    assert.equal(mac.verify(TOPIC, 'n1', null, asRead(tomb)).ok, true);
  });

  test('changing the value, the key, the topic, the signing time or the tombstone-ness breaks the MAC', () => {
    const mac = new RecordMac({ secret: SECRET });
    const headers = mac.sign(TOPIC, 'n1', VALUE);
    const bad = { ok: false, reason: 'bad_signature' };
    assert.deepEqual(mac.verify(TOPIC, 'n1', VALUE.replace('"weight":1', '"weight":1000'), headers), bad);
    assert.deepEqual(mac.verify(TOPIC, 'evil', VALUE, headers), bad, 'the same value under another key');
    assert.deepEqual(mac.verify('chat.presence', 'n1', VALUE, headers), bad, 'on another topic');
    const later = { ...headers, [RECORD_TS_HEADER]: String(Number(headers[RECORD_TS_HEADER]) + 60_000) };
    assert.deepEqual(mac.verify(TOPIC, 'n1', VALUE, later), bad, 'a signing time moved forward');
    assert.deepEqual(mac.verify(TOPIC, 'n1', null, headers), bad, 'a value turned into a tombstone');
    assert.deepEqual(mac.verify(TOPIC, 'n1', '', mac.sign(TOPIC, 'n1', null)), bad, 'a tombstone is not ""');
  });

  test('a record signed with another secret, or not signed, or with broken headers, does not verify', () => {
    const mac = new RecordMac({ secret: SECRET });
    const stranger = new RecordMac({ secret: OTHER });
    assert.deepEqual(mac.verify(TOPIC, 'n1', VALUE, stranger.sign(TOPIC, 'n1', VALUE)), {
      ok: false,
      reason: 'bad_signature',
    });
    assert.deepEqual(mac.verify(TOPIC, 'n1', VALUE, undefined), { ok: false, reason: 'unsigned' });
    assert.deepEqual(mac.verify(TOPIC, 'n1', VALUE, {}), { ok: false, reason: 'unsigned' });
    const good = mac.sign(TOPIC, 'n1', VALUE);
    for (const headers of [
      { [RECORD_MAC_HEADER]: good[RECORD_MAC_HEADER] },
      { [RECORD_TS_HEADER]: good[RECORD_TS_HEADER] },
      { ...good, [RECORD_TS_HEADER]: 'yesterday' },
      { ...good, [RECORD_TS_HEADER]: '1'.repeat(40) },
      { ...good, [RECORD_MAC_HEADER]: 'c2hvcnQ=' },
      { ...good, [RECORD_MAC_HEADER]: [good[RECORD_MAC_HEADER] ?? '', good[RECORD_MAC_HEADER] ?? ''] },
    ])
      assert.deepEqual(mac.verify(TOPIC, 'n1', VALUE, headers), { ok: false, reason: 'bad_signature' });
  });

  test('rotation: a process accepts its own key and the accepted one, and signs with its own only', () => {
    const before = new RecordMac({ secret: SECRET });
    // Step 1 of a rotation: the new secret accepted everywhere; step 2: signing with it, the old accepted.
    const step1 = new RecordMac({ secret: SECRET, accepted: [OTHER] });
    const step2 = new RecordMac({ secret: OTHER, accepted: [SECRET] });
    const after = new RecordMac({ secret: OTHER });
    assert.equal(step1.verify(TOPIC, 'n1', VALUE, step2.sign(TOPIC, 'n1', VALUE)).ok, true);
    assert.equal(step2.verify(TOPIC, 'n1', VALUE, before.sign(TOPIC, 'n1', VALUE)).ok, true);
    assert.equal(before.verify(TOPIC, 'n1', VALUE, step1.sign(TOPIC, 'n1', VALUE)).ok, true);
    assert.equal(after.verify(TOPIC, 'n1', VALUE, step2.sign(TOPIC, 'n1', VALUE)).ok, true);
    assert.equal(after.verify(TOPIC, 'n1', VALUE, before.sign(TOPIC, 'n1', VALUE)).ok, false, 'old key gone');
  });

  test('the signing time never goes backwards within a process (a clock stepped back)', () => {
    let now = 2_000;
    const mac = new RecordMac({ secret: SECRET, now: () => now });
    assert.equal(mac.sign(TOPIC, 'n1', VALUE)[RECORD_TS_HEADER], '2000');
    now = 1_500;
    assert.equal(mac.sign(TOPIC, 'n1', VALUE)[RECORD_TS_HEADER], '2000');
  });

  test('the canonical encoding is length-prefixed: moving bytes between fields changes it', () => {
    assert.notDeepEqual(canonicalRecord('ab', 'c', 1, 'd'), canonicalRecord('a', 'bc', 1, 'd'));
    assert.notDeepEqual(canonicalRecord('a', 'b', 1, null), canonicalRecord('a', 'b', 1, ''));
    assert.deepEqual(canonicalRecord('a', 'b', 1, 'é'), canonicalRecord('a', 'b', 1, Buffer.from('é')));
    assert.throws(() => deriveRecordKey(''));
    assert.notDeepEqual(
      deriveRecordKey(SECRET),
      Buffer.from(SECRET).subarray(0, 32),
      'derived, not the secret',
    );
  });
});
