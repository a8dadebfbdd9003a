import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { PlanAnswer, ShardsAnswer } from '../admin-types.js';
import { EXIT } from '../exit-codes.js';
import { drainExitCode, renderDrain, type DrainReport } from './drain.js';
import { lookupExitCode, type LookupReport } from './lookup.js';
import { renderPlan, summarisePlan } from './plan.js';
import { renderShards, summariseShards } from './shards.js';
import { statusExitCode, type StatusReport } from './status.js';

describe('summarisePlan', () => {
  const answer: PlanAnswer = {
    ownerTableVersion: 'v1',
    shards: 8,
    change: { add: 'c', weight: 1 },
    before: {
      version: 'v1',
      members: [
        { id: 'a', weight: 1, shards: 4 },
        { id: 'b', weight: 1, shards: 4 },
      ],
    },
    after: {
      version: 'v2',
      members: [
        { id: 'a', weight: 1, shards: 3 },
        { id: 'b', weight: 1, shards: 3 },
        { id: 'c', weight: 1, shards: 2 },
      ],
    },
    moved: [
      { shard: 1, from: 'a', to: 'c', connections: 0 },
      { shard: 6, from: 'b', to: 'c', connections: 0 },
    ],
  };

  test('moved shards get the connections summed over the routers; shares before and after', () => {
    const r = summarisePlan(answer, [1, 5, 0, 0, 0, 0, 2, 3]);
    assert.deepEqual(
      r.moved.map((m) => [m.shard, m.connections]),
      [
        [1, 5],
        [6, 2],
      ],
    );
    assert.equal(r.movedShards, 2);
    assert.equal(r.movedConnections, 7);
    assert.equal(r.totalConnections, 11);
    assert.deepEqual(
      r.share.map((s) => [s.node, s.before, s.after, s.afterShare]),
      [
        ['a', 4, 3, 3 / 8],
        ['b', 4, 3, 3 / 8],
        ['c', 0, 2, 2 / 8],
      ],
    );
    const text = renderPlan(r);
    assert.match(text, /moves 2 of 8 shards \(25\.0%\), 7 of 11 connections \(63\.6%\)/);
    assert.match(text, /^\s+6\s+b\s+c\s+2$/m);
    assert.match(text, /^ {2}to c: 2 shards, 7 connections$/m);
    assert.match(text, /^once c runs, wait for this table: chatctl status --wait-version v2$/m);
  });

  test('remove: the connections counted are split into the node’s own (what drain counts) and those moving between the others', () => {
    const remove: PlanAnswer = {
      ...answer,
      change: { remove: 'c' },
      before: answer.after,
      after: answer.before,
      moved: [
        { shard: 1, from: 'c', to: 'a', connections: 0 },
        { shard: 2, from: 'a', to: 'b', connections: 0 },
        { shard: 6, from: 'c', to: 'b', connections: 0 },
      ],
    };
    const r = summarisePlan(remove, [1, 5, 4, 0, 0, 0, 2, 3]);
    assert.equal(r.movedConnections, 11);
    assert.deepEqual(r.ofNode, { node: 'c', shards: 2, connections: 7 });
    assert.deepEqual(r.between, { shards: 1, connections: 4 });
    const text = renderPlan(r);
    assert.match(text, /11 of 15 connections \([\d.]+%\): every shard that changes owner/);
    assert.match(
      text,
      /^ {2}from c: 2 shards, 7 connections \(what `chatctl drain c` counts: its own connections\)$/m,
    );
    assert.match(text, /^ {2}between the other nodes: 1 shard, 4 connections/m);
    assert.doesNotMatch(text, /--wait-version/);
  });

  test('nothing moves: said in words', () => {
    const r = summarisePlan({ ...answer, moved: [], after: answer.before }, new Array<number>(8).fill(0));
    assert.match(renderPlan(r), /no shard changes owner/);
  });
});

describe('summariseShards', () => {
  const sample = (messages: number[], unanswered: string[] = []): ShardsAnswer => ({
    ownerTableVersion: 'v',
    unanswered: unanswered.map((node) => ({ node, error: 'x' })),
    shards: messages.map((m, shard) => ({
      shard,
      owner: shard % 2 ? 'b' : 'a',
      connections: shard,
      messages: m,
    })),
  });

  test('rates from two samples, hottest first, then connections; a counter that went down is 0', () => {
    const r = summariseShards(
      sample([0, 10, 5, 100]),
      sample([20, 10, 25, 0], ['n9']),
      [1, 9, 2, 3],
      2000,
      0,
    );
    assert.deepEqual(
      r.shards.map((s) => [s.shard, s.messagesPerSec, s.connections]),
      [
        [2, 10, 2],
        [0, 10, 1],
        [1, 0, 9],
        [3, 0, 3],
      ],
    );
    assert.deepEqual(r.unanswered, ['n9']);
    assert.match(renderShards(r), /warning: node n9 did not answer/);
  });

  test('--top N keeps the N hottest', () => {
    const r = summariseShards(sample([0, 0, 0]), sample([1, 3, 2]), [0, 0, 0], 1000, 2);
    assert.deepEqual(
      r.shards.map((s) => s.shard),
      [1, 2],
    );
    assert.match(renderShards(r), /2 hottest of 3 shards/);
  });
});

describe('exit codes', () => {
  const status = (healthy: boolean, agree: boolean) => ({ healthy, agree }) as StatusReport;
  test('status: 0 healthy, 1 unhealthy, 6 routers disagree (whatever the health)', () => {
    assert.equal(statusExitCode(status(true, true)), EXIT.ok);
    assert.equal(statusExitCode(status(false, true)), EXIT.condition);
    assert.equal(statusExitCode(status(true, false)), EXIT.disagree);
    assert.equal(statusExitCode(status(false, false)), EXIT.disagree);
  });
  test('status --wait-version: 0 reached, 1 not reached, whatever else the report says', () => {
    const waited = (reached: boolean, agree: boolean) =>
      ({ healthy: true, agree, wait: { version: 'v', reached, elapsedMs: 1 } }) as StatusReport;
    assert.equal(statusExitCode(waited(true, true)), EXIT.ok);
    assert.equal(statusExitCode(waited(false, true)), EXIT.condition);
    assert.equal(statusExitCode(waited(false, false)), EXIT.condition);
  });
  test('drain says it counts the drained node’s own connections (plan remove counts more)', () => {
    const text = renderDrain({
      node: 'n3',
      action: 'drain',
      nodeTold: true,
      waited: true,
      done: true,
      connectionsBefore: 6,
      connectionsLeft: 0,
      shards: 0,
      elapsedMs: 2100,
    });
    assert.match(
      text,
      /^drain n3: done in 2\.1 s: 6 connections of n3 moved \(its own only: `plan remove` also counts shards moving between the other nodes\)/,
    );
  });
  test('drain: 0 done or not waited for, 1 when the wait ran out', () => {
    const d = (waited: boolean, done: boolean) => ({ waited, done }) as DrainReport;
    assert.equal(drainExitCode(d(true, true)), EXIT.ok);
    assert.equal(drainExitCode(d(false, false)), EXIT.ok);
    assert.equal(drainExitCode(d(true, false)), EXIT.condition);
  });
  test('lookup: 5 for a user connected nowhere; a key alone is 0', () => {
    assert.equal(lookupExitCode({ connected: false } as LookupReport), EXIT.notFound);
    assert.equal(lookupExitCode({ connected: true } as LookupReport), EXIT.ok);
    assert.equal(lookupExitCode({ key: 'k', shard: 1, owner: 'a', ownerTableVersion: 'v' }), EXIT.ok);
  });
});
