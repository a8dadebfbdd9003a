import WebSocket from 'ws';
import type { Cleanup } from '../kafka/harness.js';
import { pollUntil } from '../poll.js';

export type Frame = Record<string, unknown> | string;

/** True for a delivered `message` frame. */
export const isMessage = (f: Frame): f is Record<string, unknown> =>
  typeof f === 'object' && f.type === 'message';

/** A test client: records every frame it gets and lets a test wait for the ones it expects. */
export class TestClient {
  readonly ws: WebSocket;
  readonly frames: Frame[] = [];
  readonly closed: Promise<{ code: number; reason: string }>;

  private constructor(ws: WebSocket) {
    this.ws = ws;
    ws.on('message', (data: Buffer, isBinary) => {
      const text = isBinary ? '' : data.toString('utf8');
      try {
        const parsed: unknown = JSON.parse(text);
        this.frames.push(
          typeof parsed === 'object' && parsed !== null ? (parsed as Record<string, unknown>) : text,
        );
      } catch {
        this.frames.push(text);
      }
    });
    this.closed = new Promise((resolve) =>
      ws.once('close', (code, reason) => resolve({ code, reason: reason.toString() })),
    );
  }

  /** Connects to `url`; rejects with the HTTP status when the upgrade is refused. */
  static async connect(
    cleanup: Cleanup,
    url: string,
    protocols: string[] = ['chat.v1'],
    options: WebSocket.ClientOptions = {},
  ): Promise<TestClient> {
    const ws = new WebSocket(url, protocols, options);
    const client = new TestClient(ws);
    cleanup.after(async () => {
      if (ws.readyState === WebSocket.CLOSED) return;
      ws.terminate();
      await client.closed;
    });
    await new Promise<void>((resolve, reject) => {
      ws.once('open', () => resolve());
      ws.once('unexpected-response', (_req, res) => {
        reject(Object.assign(new Error(`upgrade refused: ${res.statusCode}`), { status: res.statusCode }));
        ws.terminate();
      });
      ws.once('error', reject);
    });
    return client;
  }

  send(frame: Frame): void {
    this.ws.send(typeof frame === 'string' ? frame : JSON.stringify(frame));
  }

  /** Frames of a given `type` (objects only). */
  ofType(type: string): Record<string, unknown>[] {
    return this.frames.filter((f): f is Record<string, unknown> => typeof f === 'object' && f.type === type);
  }

  /** Waits for the first frame (from index `from`) matching `match`, and returns it. */
  async next(match: (f: Frame) => boolean, timeoutMs = 10_000, from = 0): Promise<Frame> {
    return pollUntil(() => this.frames.slice(from).find(match), {
      timeoutMs,
      intervalMs: 5,
      what: 'a matching frame',
    });
  }

  /** Waits for the ack or error answering client message id `cid`. */
  async reply(cid: string, timeoutMs = 10_000): Promise<Record<string, unknown>> {
    return (await this.next(
      (f) => typeof f === 'object' && f.cid === cid && (f.type === 'ack' || f.type === 'error'),
      timeoutMs,
    )) as Record<string, unknown>;
  }

  /** Waits until at least `count` frames match `match`. */
  async waitCount(match: (f: Frame) => boolean, count: number, timeoutMs = 20_000): Promise<Frame[]> {
    return pollUntil(
      () => {
        const found = this.frames.filter(match);
        return found.length >= count ? found : undefined;
      },
      { timeoutMs, intervalMs: 10, what: `${count} matching frames` },
    );
  }

  async close(): Promise<void> {
    if (this.ws.readyState !== WebSocket.CLOSED) this.ws.close(1000);
    await this.closed;
  }
}
