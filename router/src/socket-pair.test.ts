// SocketPair on real TCP sockets on 127.0.0.1: forwarding both ways, the bound on what is queued toward a
// side that does not read and the stall cut, the half-close bound, and the router's own cut.
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { createServer, connect, type AddressInfo, type Socket } from 'node:net';
import { describe, test, type TestContext } from 'node:test';
import { SocketPair, type PairEnd } from './socket-pair.js';

/** A connected pair of TCP sockets [near, far] (both destroyed after the test). */
async function tcp(t: TestContext): Promise<[Socket, Socket]> {
  const server = createServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const accepted = once(server, 'connection') as Promise<[Socket]>;
  const near = connect((server.address() as AddressInfo).port, '127.0.0.1');
  await once(near, 'connect');
  const [far] = await accepted;
  server.close();
  for (const s of [near, far]) s.on('error', () => undefined);
  t.after(() => {
    near.destroy();
    far.destroy();
  });
  return [near, far];
}

/**
 * The router's two sockets (`client`, `upstream`) in a pair, and the peers a test drives: `user` (the
 * client's end) and `node` (the upstream's end).
 */
async function setup(t: TestContext, stallTimeoutMs = 60_000, halfCloseGraceMs = 60_000) {
  const [client, user] = await tcp(t);
  const [upstream, node] = await tcp(t);
  const ended: PairEnd[] = [];
  const pair = new SocketPair('c1', client, upstream, {
    stallTimeoutMs,
    halfCloseGraceMs,
    onEnd: (p, by) => {
      assert.equal(p.id, 'c1');
      ended.push(by);
    },
  });
  return { pair, client, upstream, user, node, ended };
}

async function read(socket: Socket, bytes: number): Promise<string> {
  let got = '';
  while (got.length < bytes) got += String((await once(socket, 'data'))[0]);
  return got;
}

describe('SocketPair: forwarding', () => {
  test('bytes go both ways unchanged', async (t) => {
    const s = await setup(t);
    s.user.write('hello node');
    assert.equal(await read(s.node, 10), 'hello node');
    s.node.write('hello user');
    assert.equal(await read(s.user, 10), 'hello user');
    assert.deepEqual(s.ended, []);
  });
});

describe('SocketPair: a side that does not read', () => {
  test('the other side is paused, so the router queues at most a socket buffer; cut after the stall timeout', async (t) => {
    const s = await setup(t, 300);
    s.user.pause();
    // The node sends 64 MiB; the user reads nothing.
    const chunk = Buffer.alloc(1024 * 1024, 1);
    let sent = 0;
    const pump = () => {
      while (sent < 64 && s.node.write(chunk)) sent++;
    };
    s.node.on('drain', pump);
    pump();
    let maxQueued = 0;
    const watch = setInterval(() => (maxQueued = Math.max(maxQueued, s.client.writableLength)), 5);
    t.after(() => clearInterval(watch));
    await once(s.client, 'close');
    clearInterval(watch);
    assert.deepEqual(s.ended, ['stalled']);
    assert.equal(s.upstream.destroyed, true, 'both sockets cut');
    assert.ok(maxQueued <= 16 * 1024 + 128 * 1024, `queued ${maxQueued} bytes toward the client`);
  });

  test('a side that takes its queue gets the rest: the paused side is resumed on drain, nothing cut', async (t) => {
    const s = await setup(t, 60_000);
    s.user.pause();
    const chunk = Buffer.alloc(1024 * 1024, 1);
    for (let i = 0; i < 8; i++) s.node.write(chunk);
    await once(s.upstream, 'pause');
    s.user.resume();
    let got = 0;
    s.user.on('data', (b: Buffer) => (got += b.length));
    while (got < 8 * 1024 * 1024) await once(s.user, 'data');
    assert.equal(got, 8 * 1024 * 1024);
    assert.deepEqual(s.ended, []);
    assert.equal(s.client.destroyed, false);
  });
});

describe('SocketPair: one side closes', () => {
  test('the node closes: the client is ended at once and destroyed after the grace although it never reads', async (t) => {
    const s = await setup(t, 60_000, 200);
    s.user.pause();
    s.node.write(Buffer.alloc(4096, 2));
    await once(s.upstream, 'data');
    s.node.destroy();
    const started = Date.now();
    await once(s.client, 'close');
    assert.ok(Date.now() - started >= 150, 'the grace lets a reading client have its bytes');
    assert.deepEqual(s.ended, ['upstream']);
  });

  test('the node closes while the router no longer reads it (client not reading): the stall timeout bounds the pair', async (t) => {
    const s = await setup(t, 300, 60_000);
    s.user.pause();
    for (let i = 0; i < 16; i++) s.node.write(Buffer.alloc(1024 * 1024, 2));
    await once(s.upstream, 'pause');
    // A paused socket does not see its peer go: the stall timeout is what closes this pair.
    s.node.destroy();
    await once(s.client, 'close');
    assert.deepEqual(s.ended, ['stalled']);
  });

  test('the client closes: the node gets the FIN', async (t) => {
    const s = await setup(t);
    s.node.resume();
    s.user.end();
    await once(s.node, 'end');
    await once(s.upstream, 'close');
    assert.deepEqual(s.ended, ['client']);
  });
});

describe('SocketPair#destroy', () => {
  test('cuts both sockets, ends once as the router', async (t) => {
    const s = await setup(t);
    s.pair.destroy();
    s.pair.destroy();
    await Promise.all([once(s.user, 'close'), once(s.node, 'close')]);
    assert.deepEqual(s.ended, ['router']);
  });
});
