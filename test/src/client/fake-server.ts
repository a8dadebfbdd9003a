// A scripted WebSocket server for the SDK's policy tests: a real `ws` server on a free port that records
// every connection (its URL, subprotocols, frames, when it came) and lets a test decide, per connection,
// what the server does (close with a code, answer frames). The cluster's real closes are tested against
// real routers and nodes (live.test.ts); this shows the SDK's next step for every close code, cheaply.
import type { IncomingMessage } from 'node:http';
import { WebSocketServer, type WebSocket } from 'ws';
import type { Cleanup } from '../kafka/harness.js';
import { pollUntil } from '../poll.js';

export interface FakeConnection {
  readonly ws: WebSocket;
  readonly url: URL;
  readonly protocols: string[];
  /** The token the client offered as `bearer.<jwt>`, if any. */
  readonly token: string | undefined;
  readonly at: number;
  /** Parsed JSON frames from the client, in order. */
  readonly frames: Record<string, unknown>[];
  /** When the connection closed (either side), or undefined while open. */
  closedAt: number | undefined;
  send(frame: Record<string, unknown> | string): void;
  /** Resolves with the `n`th frame (0-based) of `type`. */
  frame(type: string, n?: number): Promise<Record<string, unknown>>;
}

export interface FakeServer {
  readonly url: string;
  /** Upgrade requests so far, refused ones included. */
  readonly upgrades: () => number;
  readonly connections: FakeConnection[];
  /** Resolves with connection number `n` (0-based) once it has opened. */
  connection(n: number, timeoutMs?: number): Promise<FakeConnection>;
}

/**
 * Starts a server on 127.0.0.1:0. `onConnection(conn, index)` runs for each connection as it opens (the
 * script of the test: close it, answer, nothing). Closed with the test.
 */
export async function startFakeServer(
  cleanup: Cleanup,
  onConnection: (conn: FakeConnection, index: number) => void = () => undefined,
  /** The HTTP status refusing upgrade request number `index` (0-based), or undefined to accept it. */
  refuse: (index: number) => number | undefined = () => undefined,
  /** The subprotocol selected from those offered (a refusing router selects `chat.refusal`). */
  select: (offered: Set<string>) => string | false = (offered) =>
    offered.has('chat.v1') ? 'chat.v1' : false,
): Promise<FakeServer> {
  let upgrades = 0;
  const wss = new WebSocketServer({
    host: '127.0.0.1',
    port: 0,
    perMessageDeflate: false,
    handleProtocols: select,
    verifyClient: (_info, done) => {
      const status = refuse(upgrades++);
      if (status === undefined) done(true);
      else done(false, status);
    },
  });
  await new Promise<void>((resolve, reject) => {
    wss.once('listening', resolve);
    wss.once('error', reject);
  });
  const connections: FakeConnection[] = [];
  wss.on('connection', (ws: WebSocket, req: IncomingMessage) => {
    const protocols = (req.headers['sec-websocket-protocol'] ?? '')
      .split(',')
      .map((p) => p.trim())
      .filter(Boolean);
    const bearer = protocols.find((p) => p.startsWith('bearer.'));
    const frames: Record<string, unknown>[] = [];
    const conn: FakeConnection = {
      ws,
      url: new URL(req.url ?? '/', 'http://fake'),
      protocols,
      token: bearer?.slice('bearer.'.length),
      at: Date.now(),
      frames,
      closedAt: undefined,
      send: (frame) => ws.send(typeof frame === 'string' ? frame : JSON.stringify(frame)),
      frame: (type, n = 0) =>
        pollUntil(() => frames.filter((f) => f.type === type)[n], {
          timeoutMs: 10_000,
          intervalMs: 5,
          what: `frame ${type} #${n}`,
        }),
    };
    ws.on('error', () => undefined);
    ws.on('message', (data: Buffer) => {
      try {
        frames.push(JSON.parse(data.toString('utf8')) as Record<string, unknown>);
      } catch {
        frames.push({ type: '(not json)', text: data.toString('utf8') });
      }
    });
    ws.on('close', () => (conn.closedAt = Date.now()));
    connections.push(conn);
    onConnection(conn, connections.length - 1);
  });
  cleanup.after(async () => {
    for (const c of wss.clients) c.terminate();
    await new Promise((resolve) => wss.close(resolve));
  });
  const address = wss.address();
  const port = typeof address === 'object' && address !== null ? address.port : 0;
  return {
    url: `ws://127.0.0.1:${port}`,
    upgrades: () => upgrades,
    connections,
    connection: (n, timeoutMs = 10_000) =>
      pollUntil(() => connections[n], { timeoutMs, intervalMs: 5, what: `connection #${n}` }),
  };
}
