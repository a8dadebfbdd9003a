// The chaos load client against a small scripted WebSocket server (port 0): it must behave like an app
// (honour Retry-After on a refused upgrade and retry_after_ms in a close reason, retry a send with the
// same cid after a retryable error or when its socket closed unanswered) and record what happened.
import assert from 'node:assert/strict';
import { createServer, type IncomingMessage } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { test, type TestContext } from 'node:test';
import { WebSocketServer, type WebSocket } from 'ws';
import { pollUntil } from '../poll.js';
import { account } from './accounting.js';
import { LoadClient } from './load-client.js';

interface Script {
  /** Upgrades refused so far, per user. */
  refused: Map<string, number>;
  /** Sends seen so far, per cid. */
  seen: Map<string, number>;
  sockets: Map<string, WebSocket>;
}

/**
 * A server that refuses each user's first upgrade (503, Retry-After: 1), answers each cid's first send
 * with a retryable error, closes the socket without answering the second send of cids ending in 7, and
 * acks (`accepted`) and delivers the rest (once per cid; held for a receiver who is away).
 */
async function scriptedServer(t: TestContext): Promise<{ url: (user: string) => string; script: Script }> {
  const script: Script = { refused: new Map(), seen: new Map(), sockets: new Map() };
  const wss = new WebSocketServer({ noServer: true });
  const delivered = new Set<string>();
  const held = new Map<string, string[]>();
  const server = createServer();
  server.on('upgrade', (req: IncomingMessage, socket: Socket, head: Buffer) => {
    socket.on('error', () => undefined);
    const user = (req.url ?? '').split('/').pop() ?? '';
    if (!script.refused.has(user)) {
      script.refused.set(user, 1);
      socket.end(
        'HTTP/1.1 503 Service Unavailable\r\nRetry-After: 1\r\nConnection: close\r\nContent-Length: 0\r\n\r\n',
      );
      return;
    }
    wss.handleUpgrade(req, socket, head, (ws) => {
      script.sockets.set(user, ws);
      for (const text of held.get(user) ?? []) ws.send(text);
      held.delete(user);
      ws.on('message', (data: Buffer) => {
        const frame = JSON.parse(data.toString('utf8')) as { cid: string; to: string; body: string };
        const n = (script.seen.get(frame.cid) ?? 0) + 1;
        script.seen.set(frame.cid, n);
        if (n === 1) {
          ws.send(
            JSON.stringify({
              type: 'error',
              code: 'NODE_ERR_BUS_UNAVAILABLE',
              retryable: true,
              message: 'x',
              cid: frame.cid,
            }),
          );
        } else if (n === 2 && frame.cid.endsWith('7')) {
          ws.close(4001, 'draining retry_after_ms=300');
        } else {
          ws.send(JSON.stringify({ type: 'ack', cid: frame.cid, id: `s-${frame.cid}`, status: 'accepted' }));
          // Delivered once per cid (a retry gets the ack again, as a node's dedupe does), held while
          // the receiver is away (as handoff does).
          if (delivered.has(frame.cid)) return;
          delivered.add(frame.cid);
          const text = JSON.stringify({
            type: 'message',
            id: `s-${frame.cid}`,
            from: user,
            to: frame.to,
            body: frame.body,
            ts: 0,
          });
          const to = script.sockets.get(frame.to);
          if (to && to.readyState === to.OPEN) to.send(text);
          else held.set(frame.to, [...(held.get(frame.to) ?? []), text]);
        }
      });
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.after(async () => {
    for (const ws of wss.clients) ws.terminate();
    wss.close();
    await new Promise((resolve) => server.close(resolve));
  });
  const { port } = server.address() as AddressInfo;
  return { url: (user) => `ws://127.0.0.1:${port}/chat/${user}`, script };
}

test('load client: Retry-After, retry_after_ms, retries with the same cid, every message accounted', async (t) => {
  const { url, script } = await scriptedServer(t);
  const load = new LoadClient({ url, users: 4, groups: 1, ratePerSec: 50, crossShare: 0, tag: 'lc' });
  t.after(() => load.close());
  const t0 = Date.now();
  await load.connect(10_000);
  // Every user's first upgrade was refused with Retry-After: 1; the next came no sooner.
  assert.equal(load.closes.filter((c) => !c.wasOpen && c.status === 503).length, 4);
  for (const u of load.users) assert.ok((load.spansOf(u.id)[0]?.openAt ?? 0) - t0 >= 950, `${u.id} waited`);

  load.start();
  await load.written(20, 10_000);
  load.stop();
  assert.equal(await load.settle(15_000, 200), true);
  await pollUntil(() => load.openCount === 4, { timeoutMs: 5000, what: 'every user connected again' });

  const c = account({
    records: load.records.values(),
    closes: load.closes,
    reconnectMs: load.reconnectMs,
    spansOf: (u) => load.spansOf(u),
    graceMs: 60_000,
    uncorrelated: load.uncorrelated,
  });
  const written = load.records.size;
  assert.equal(c.written, written);
  assert.deepEqual(c.acked, { accepted: written });
  assert.equal(c.lostAccepted, 0);
  assert.equal(c.duplicates, 0);
  // Each cid was sent with the same receiver and body until acked: at least twice (a retryable error
  // first), three times for those the server closed on (cids ending in 7), after a reconnect. A send in
  // flight when a socket closed is answered by nobody and sent again: hence "at least".
  const sevens = [...load.records.keys()].filter((cid) => cid.endsWith('7')).length;
  assert.ok(sevens >= 2);
  const errors = c.errors.NODE_ERR_BUS_UNAVAILABLE ?? 0;
  assert.ok(errors >= 1 && errors <= written, `${errors} errors`);
  assert.ok(c.retries >= written + 1, `${c.retries} retries`);
  for (const [cid, n] of script.seen) assert.ok(n >= (cid.endsWith('7') ? 3 : 2), `${cid} sent ${n} times`);
  for (const r of load.records.values())
    assert.deepEqual(
      r.receptions.map((x) => x.id),
      [`s-${r.cid}`],
    );
  const closes = c.closes['4001'] ?? 0;
  assert.ok(closes >= 1 && closes <= sevens, `${closes} closes`);
  assert.equal(load.reconnectMs.length, closes);
  for (const ms of load.reconnectMs)
    assert.ok(ms >= 290, `reconnect after ${ms} ms honours retry_after_ms=300`);
});

test('load client: churn closes sockets from the app side and reconnects at once, not counted as server closes', async (t) => {
  const { url } = await scriptedServer(t);
  const load = new LoadClient({
    url,
    users: 4,
    groups: 2,
    ratePerSec: 10,
    crossShare: 0.5,
    churnPerSec: 20,
    tag: 'ch',
  });
  t.after(() => load.close());
  await load.connect(10_000);
  load.start();
  await pollUntil(() => load.closes.filter((c) => c.byClient).length >= 5, {
    timeoutMs: 10_000,
    what: '5 app reconnects',
  });
  load.stop();
  assert.equal(await load.settle(15_000, 200), true);
  const churned = load.closes.filter((c) => c.byClient);
  assert.ok(churned.every((c) => c.code === 1000 && c.wasOpen));
  // Only the server's closes make reconnect times (the scripted server closes on cids ending in 7).
  assert.equal(load.reconnectMs.length, load.closes.filter((c) => c.wasOpen && !c.byClient).length);
  for (const u of load.users) assert.ok(load.spansOf(u.id).length >= 1);
  assert.ok(
    load.users.some((u) => load.spansOf(u.id).length >= 2),
    'someone reopened',
  );
  for (const r of load.records.values()) assert.equal(r.receptions.length, 1, r.cid);
});
