// The door of the directory topics (issue 15, item 3): unsigned and forged records are ignored and
// counted; a replayed record the cluster really wrote is ignored as stale; permissive mode for upgrades;
// which secret a process uses, and refusing to start without one.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { isChatError } from '../errors.js';
import { createLogger } from '../logger.js';
import {
  RecordGate,
  directoryAuthFromConfig,
  type IgnoredReason,
  type RecordAuthMode,
} from './record-gate.js';
import { RecordMac } from './record-mac.js';

const SECRET = 'cluster-secret-for-the-unit-test-0001';
const TOPIC = 'chat.members';
const logger = createLogger({ name: 'test', level: 'silent' });

function gateWith(mode: RecordAuthMode = 'required', clock = { now: 1_000_000 }) {
  const ignored: [string, IgnoredReason][] = [];
  let unsigned = 0;
  const mac = new RecordMac({ secret: SECRET, now: () => clock.now });
  const gate = new RecordGate({
    mac: new RecordMac({ secret: SECRET }),
    mode,
    logger,
    onIgnored: (topic, reason) => ignored.push([topic, reason]),
    onUnsignedAccepted: () => unsigned++,
    now: () => clock.now,
  });
  /** A record as a node of the cluster writes it, read back as Kafka hands it over. */
  const written = (key: string, value: string | null) => {
    const headers = mac.sign(TOPIC, key, value);
    return { key, value: value === null ? null : Buffer.from(value), headers };
  };
  const admit = (r: { key: string; value: Buffer | null; headers?: Record<string, string> }) =>
    gate.admit(TOPIC, r.key, r.value, r.headers);
  return { gate, ignored, unsigned: () => unsigned, written, admit, clock };
}

const beat = (weight: number) => JSON.stringify({ v: 1, id: 'n1', weight });

describe('RecordGate', () => {
  test('admits the cluster’s records; ignores and counts unsigned and forged ones', () => {
    const { admit, written, ignored } = gateWith();
    assert.equal(admit(written('n1', beat(1))), true);
    assert.equal(admit({ key: 'evil', value: Buffer.from(beat(1000)) }), false);
    const real = written('n1', beat(1));
    assert.equal(admit({ ...real, value: Buffer.from(beat(1000)) }), false, 'a tampered copy');
    assert.deepEqual(ignored, [
      [TOPIC, 'unsigned'],
      [TOPIC, 'bad_signature'],
    ]);
  });

  test('a replay of an older record of a key is ignored as stale; the same latest record again is not', () => {
    const { admit, written, ignored, clock } = gateWith();
    const active = written('n1', beat(1));
    clock.now += 1000;
    const draining = written('n1', JSON.stringify({ v: 1, id: 'n1', state: 'draining' }));
    clock.now += 1000;
    const goodbye = written('n1', null);
    assert.equal(admit(active), true);
    assert.equal(admit(draining), true);
    assert.equal(admit(active), false, 'the older "active" heartbeat replayed after "draining"');
    assert.equal(admit(draining), true, 'a consumer reading the latest record again');
    assert.equal(admit(goodbye), true);
    assert.equal(admit(draining), false, 'an old heartbeat replayed after the goodbye');
    assert.deepEqual(
      ignored.map(([, r]) => r),
      ['stale', 'stale'],
    );
    // Keys are independent: an old record of another key is not stale.
    clock.now -= 5000;
    assert.equal(admit(written('n2', beat(1))), true);
  });

  test('a replayed old tombstone does not remove a member that came back', () => {
    const { admit, written, clock } = gateWith();
    const goodbye = written('n1', null);
    clock.now += 10_000;
    const back = written('n1', beat(1));
    assert.equal(admit(goodbye), true);
    assert.equal(admit(back), true);
    assert.equal(admit(goodbye), false);
  });

  test('tombstoned keys are forgotten an hour after their tombstone (memory stays bounded)', () => {
    const { gate, admit, written, clock } = gateWith();
    for (let i = 0; i < 1023; i++) assert.equal(admit(written(`u${i}`, null)), true);
    assert.equal(gate.size, 1023);
    clock.now += 3_600_001;
    assert.equal(admit(written('live', beat(1))), true);
    assert.equal(admit(written('last', null)), true, 'the 1024th tombstone sweeps');
    assert.equal(gate.size, 2, 'the live key and the fresh tombstone stay');
  });

  test('permissive mode accepts unsigned records (counted) and still ignores wrong signatures', () => {
    const { admit, written, ignored, unsigned } = gateWith('permissive');
    assert.equal(admit({ key: 'old', value: Buffer.from(beat(1)) }), true);
    assert.equal(unsigned(), 1);
    const real = written('n1', beat(1));
    assert.equal(admit({ ...real, value: Buffer.from(beat(1000)) }), false);
    assert.deepEqual(ignored, [[TOPIC, 'bad_signature']]);
  });

  test('without a MAC (no secret configured) nothing is signed nor checked', () => {
    const gate = new RecordGate({
      mac: undefined,
      mode: 'permissive',
      logger,
      onIgnored: () => assert.fail(),
    });
    assert.equal(gate.checking, false);
    assert.equal(gate.sign(TOPIC, 'n1', beat(1)), undefined);
    assert.equal(gate.admit(TOPIC, 'n1', Buffer.from(beat(1)), undefined), true);
  });
});

describe('directoryAuthFromConfig', () => {
  const base = {
    kafkaBrokers: ['127.0.0.1:9092'],
    clusterSecret: '',
    clusterSecretAccept: '',
    clusterRecordAuth: 'required' as RecordAuthMode,
    internalToken: '',
  };

  test('Kafka without any secret refuses to start (CONFIG_ERR_INVALID naming CHAT_CLUSTER_SECRET)', () => {
    assert.throws(
      () => directoryAuthFromConfig(base),
      (err) => isChatError(err, 'CONFIG_ERR_INVALID') && /CHAT_CLUSTER_SECRET/.test(err.message),
    );
  });

  test('permissive without a secret runs unsigned with a warning; the in-process bus needs nothing', () => {
    const dev = directoryAuthFromConfig({ ...base, clusterRecordAuth: 'permissive' });
    assert.equal(dev.mac, undefined);
    assert.match(dev.warning ?? '', /not signed/);
    assert.equal(directoryAuthFromConfig({ ...base, kafkaBrokers: [] }).mac, undefined);
  });

  test('the key comes from CHAT_CLUSTER_SECRET, else from CHAT_INTERNAL_TOKEN; both sides agree', () => {
    const fromSecret = directoryAuthFromConfig({ ...base, clusterSecret: SECRET }).mac;
    const fromToken = directoryAuthFromConfig({ ...base, internalToken: 'internal-token-0123456789' }).mac;
    const sameToken = directoryAuthFromConfig({ ...base, internalToken: 'internal-token-0123456789' }).mac;
    assert.ok(fromSecret && fromToken && sameToken);
    const headers = fromToken.sign(TOPIC, 'n1', 'v');
    assert.equal(sameToken.verify(TOPIC, 'n1', 'v', headers).ok, true);
    assert.equal(fromSecret.verify(TOPIC, 'n1', 'v', headers).ok, false);
    // The secret wins over the token when both are set.
    const both = directoryAuthFromConfig({
      ...base,
      clusterSecret: SECRET,
      internalToken: 'x'.repeat(20),
    }).mac;
    assert.equal(fromSecret.verify(TOPIC, 'n1', 'v', both?.sign(TOPIC, 'n1', 'v')).ok, true);
  });

  test('CHAT_CLUSTER_SECRET_ACCEPT verifies too; permissive with a secret warns', () => {
    const next = 'next-cluster-secret-for-the-unit-test-2';
    const a = directoryAuthFromConfig({ ...base, clusterSecret: SECRET, clusterSecretAccept: next }).mac;
    const b = directoryAuthFromConfig({ ...base, clusterSecret: next }).mac;
    assert.equal(a?.verify(TOPIC, 'k', 'v', b?.sign(TOPIC, 'k', 'v')).ok, true);
    const upgrade = directoryAuthFromConfig({
      ...base,
      clusterSecret: SECRET,
      clusterRecordAuth: 'permissive',
    });
    assert.ok(upgrade.mac);
    assert.match(upgrade.warning ?? '', /unsigned/);
  });
});
