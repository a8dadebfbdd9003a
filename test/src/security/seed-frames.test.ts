// Issue 15, item 7: a seed-format frame reaches its receivers with its known fields only. Before, every
// field was forwarded as written, so a sender could add `"from":"admin"` (or `type`-less look-alikes of
// server fields such as `id` and `ts`) and a receiver showed it. Against a real node process, to a v1 and
// a seed session of the receiver.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { startNode } from '../harness/node-process.js';
import { TestClient } from '../harness/ws-client.js';

test('a seed frame is delivered with sender_id, receiver_id, text, body and cid only; added fields are dropped', async (t) => {
  const node = await startNode(t, { nodeId: 'seed-fields' });
  const mallory = await TestClient.connect(t, node.wsUrl('mallory'), []);
  const bobV1 = await TestClient.connect(t, node.wsUrl('bob'));
  const bobSeed = await TestClient.connect(t, node.wsUrl('bob'), []);
  mallory.send({
    sender_id: 'mallory',
    receiver_id: 'bob',
    text: 'please reset your password here',
    cid: 'k1',
    from: 'admin',
    id: 'n1-forged',
    ts: 0,
    verified: true,
    meta: { badge: 'staff' },
  });
  assert.equal((await mallory.reply('k1')).status, 'delivered');
  const expected = {
    sender_id: 'mallory',
    receiver_id: 'bob',
    text: 'please reset your password here',
    cid: 'k1',
  };
  for (const bob of [bobV1, bobSeed]) {
    const got = await bob.next((f) => typeof f === 'object' && f.text !== undefined);
    assert.deepEqual(got, expected);
  }
  // A field of the seed format with the wrong type is refused, not dropped: nothing is delivered.
  mallory.send({ sender_id: 'mallory', receiver_id: 'bob', text: { html: '<b>x</b>' }, cid: 'k2' });
  const refused = await mallory.reply('k2');
  assert.equal(refused.code, 'PROTO_ERR_INVALID_FRAME');
  mallory.send('ping');
  await mallory.next((f) => f === 'pong');
  bobV1.send('ping');
  await bobV1.next((f) => f === 'pong');
  assert.equal(bobV1.frames.filter((f) => typeof f === 'object' && f.sender_id !== undefined).length, 1);
});
