import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { MemberHeartbeat } from '@chat/shared';
import { PresenceDirectory } from './presence-directory.js';

function heartbeat(id: string, epoch: string, ts: number): MemberHeartbeat {
  return { v: 1, id, url: `http://${id}`, weight: 1, state: 'active', epoch, ts, intervalMs: 1000 };
}

test('a user counts on a node while its heartbeats are fresh, and not on the asking node', () => {
  let now = 10_000;
  const dir = new PresenceDirectory({ timeoutMs: 3000, now: () => now });
  dir.applyMember('a', heartbeat('a', 'e1', now));
  dir.applyMember('b', heartbeat('b', 'e2', now));
  dir.applyPresence('u', 'a', 'e1');
  dir.applyPresence('u', 'b', 'e2');
  assert.deepEqual(dir.remoteNodesOf('u', 'a'), ['b']);
  assert.deepEqual(dir.remoteNodesOf('u', 'self').sort(), ['a', 'b']);
  // a keeps beating, b goes silent: b expires after the timeout.
  for (let i = 0; i < 4; i++) {
    now += 1000;
    dir.applyMember('a', heartbeat('a', 'e1', now));
  }
  assert.deepEqual(dir.remoteNodesOf('u', 'self'), ['a'], 'b expired');
  dir.applyMember('b', heartbeat('b', 'e2', now));
  assert.deepEqual(dir.remoteNodesOf('u', 'self').sort(), ['a', 'b']);
});

test('when no heartbeat arrives at all (the bus is down), nobody expires', () => {
  let now = 10_000;
  const dir = new PresenceDirectory({ timeoutMs: 3000, now: () => now });
  dir.applyMember('a', heartbeat('a', 'e1', now));
  dir.applyPresence('u', 'a', 'e1');
  now += 600_000;
  assert.deepEqual(dir.remoteNodesOf('u', 'self'), ['a']);
});

test('entries of a previous incarnation never count and are reported as stale', () => {
  const now = 1000;
  const dir = new PresenceDirectory({ timeoutMs: 3000, now: () => now });
  dir.applyPresence('old-user', 'a', 'old');
  dir.applyPresence('new-user', 'a', 'new');
  dir.applyMember('a', heartbeat('a', 'new', now));
  assert.deepEqual(dir.remoteNodesOf('old-user', 'x'), []);
  assert.deepEqual(dir.remoteNodesOf('new-user', 'x'), ['a']);
  assert.deepEqual(dir.staleEntriesOf('a', 'new'), ['old-user']);
});

test('tombstones remove presence and members', () => {
  const now = 1000;
  const dir = new PresenceDirectory({ timeoutMs: 3000, now: () => now });
  dir.applyMember('a', heartbeat('a', 'e', now));
  dir.applyPresence('u', 'a', 'e');
  dir.applyPresence('u', 'a', null);
  assert.deepEqual(dir.remoteNodesOf('u', 'x'), []);
  dir.applyPresence('u', 'a', 'e');
  dir.applyMember('a', null);
  assert.deepEqual(dir.remoteNodesOf('u', 'x'), []);
  assert.deepEqual(dir.liveMembers(), []);
});

test('a heartbeat stamped in the future counts from now, not longer', () => {
  let now = 1000;
  const dir = new PresenceDirectory({ timeoutMs: 3000, now: () => now });
  dir.applyMember('a', heartbeat('a', 'e', now + 60_000));
  dir.applyPresence('u', 'a', 'e');
  // The stream goes on (a silent stream would be a stall, which keeps everyone).
  for (let t = 1500; t <= 4500; t += 500) {
    now = t;
    dir.applyMember('c', heartbeat('c', 'e', now));
  }
  assert.deepEqual(dir.remoteNodesOf('u', 'x'), []);
});

test('a user who left keeps their shard for the grace period, then is nowhere', () => {
  let now = 1000;
  const dir = new PresenceDirectory({ timeoutMs: 3000, now: () => now, graceMs: 5000 });
  dir.applyMember('a', heartbeat('a', 'e', now));
  dir.applyPresence('u', 'a', 'e', 7);
  assert.equal(dir.shardOf('u'), 7);
  dir.applyPresence('u', 'a', null);
  assert.equal(dir.shardOf('u'), 7, 'reconnecting: messages still go to its shard');
  now += 5001;
  assert.equal(dir.shardOf('u'), undefined);
  assert.equal(dir.shardOf('never'), undefined);
});

test('isMemberAlive: the member in that incarnation, with fresh heartbeats', () => {
  const now = 1000;
  const dir = new PresenceDirectory({ timeoutMs: 3000, now: () => now });
  dir.applyMember('a', heartbeat('a', 'e1', now));
  assert.equal(dir.isMemberAlive('a', 'e1'), true);
  assert.equal(dir.isMemberAlive('a', 'e0'), false, 'a previous incarnation');
  assert.equal(dir.isMemberAlive('b', 'e1'), false);
});

test('a user whose node stopped heartbeating (kill -9) keeps their shard for the grace period after its last heartbeat', () => {
  let now = 10_000;
  const dir = new PresenceDirectory({ timeoutMs: 3000, now: () => now, graceMs: 20_000 });
  dir.applyMember('a', heartbeat('a', 'e1', now));
  dir.applyMember('b', heartbeat('b', 'e2', now));
  dir.applyPresence('u', 'b', 'e2', 5);
  const lastOfB = now;
  // a keeps beating (the stream moves on), b is silent: dead after the timeout...
  while (now < lastOfB + 19_000) {
    now += 1000;
    dir.applyMember('a', heartbeat('a', 'e1', now));
  }
  assert.deepEqual(dir.remoteNodesOf('u', 'a'), [], 'b is dead');
  assert.deepEqual(dir.remoteShardsOf('u', 'a'), []);
  // ...but its user is reconnecting somewhere: still reachable through the shard.
  assert.equal(dir.shardOf('u'), 5);
  now = lastOfB + 20_000;
  dir.applyMember('a', heartbeat('a', 'e1', now));
  assert.equal(dir.shardOf('u'), 5, 'the grace period counts from b’s last heartbeat (inclusive)');
  now += 1;
  dir.applyMember('a', heartbeat('a', 'e1', now));
  assert.equal(dir.shardOf('u'), undefined, 'then nowhere: offline is the truth');
});

test('a live entry wins over a dead node’s, and a previous incarnation’s entry never counts', () => {
  let now = 10_000;
  const dir = new PresenceDirectory({ timeoutMs: 3000, now: () => now, graceMs: 60_000 });
  dir.applyMember('a', heartbeat('a', 'e1', now));
  dir.applyMember('b', heartbeat('b', 'e2', now));
  dir.applyPresence('u', 'b', 'e2', 5);
  dir.applyPresence('old', 'b', 'e0', 6);
  for (let i = 0; i < 5; i++) {
    now += 1000;
    dir.applyMember('a', heartbeat('a', 'e1', now));
  }
  assert.equal(dir.shardOf('old'), undefined);
  dir.applyPresence('u', 'a', 'e1', 9);
  assert.equal(dir.shardOf('u'), 9, 'reconnected on a: its new shard');
});

test('a member’s goodbye (tombstone) before its users’ removals: they linger for the grace period after its last heartbeat', () => {
  let now = 10_000;
  const dir = new PresenceDirectory({ timeoutMs: 3000, now: () => now, graceMs: 5000 });
  dir.applyMember('b', heartbeat('b', 'e2', now));
  dir.applyPresence('u', 'b', 'e2', 4);
  now += 1000;
  dir.applyMember('b', null);
  assert.equal(dir.shardOf('u'), 4);
  now += 4000;
  assert.equal(dir.shardOf('u'), 4);
  now += 1;
  assert.equal(dir.shardOf('u'), undefined);
  // A tombstone replayed long after the member's last heartbeat adds nothing.
  const replay = new PresenceDirectory({ timeoutMs: 3000, now: () => now, graceMs: 5000 });
  replay.applyMember('c', heartbeat('c', 'e3', now - 60_000));
  replay.applyPresence('v', 'c', 'e3', 2);
  replay.applyMember('c', null);
  assert.equal(replay.shardOf('v'), undefined);
});
