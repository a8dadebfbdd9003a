// Shared by the SDK's live tests: a client with every event recorded, and a WebSocket class that also
// records what the platform saw (each URL opened, every raw text frame), so a test can tell a duplicate
// the server sent from one the SDK dropped.
import {
  connect,
  type ChatClient,
  type ChatError,
  type ConnectOptions,
  type MessageFrame,
  type ResumedFrame,
  type StateEvent,
  type WebSocketConstructor,
} from '@chat/client';
import type { Cleanup } from '../kafka/harness.js';
import { pollUntil } from '../poll.js';

export interface Wire {
  readonly urls: string[];
  /** Raw `message` frames as the platform delivered them, before the SDK's duplicate window. */
  readonly messages: { id: string; body: string }[];
}

/** Node 24's platform WebSocket, recording into `wire`. */
export function recordingWebSocket(wire: Wire): WebSocketConstructor {
  return class RecordingWebSocket extends WebSocket {
    constructor(url: string | URL, protocols?: string | string[]) {
      super(url, protocols);
      wire.urls.push(String(url));
      this.addEventListener('message', (e: MessageEvent) => {
        if (typeof e.data !== 'string') return;
        const f = JSON.parse(e.data) as { type?: string; id?: string; body?: string };
        if (f.type === 'message') wire.messages.push({ id: String(f.id), body: String(f.body) });
      });
    }
  };
}

export interface Recorded {
  readonly client: ChatClient;
  readonly states: StateEvent[];
  /** When each state event came (Date.now()), by index. */
  readonly stateAt: number[];
  readonly messages: MessageFrame[];
  readonly resumed: ResumedFrame[];
  readonly errors: ChatError[];
  readonly wire: Wire;
  /** Resolves with the `n`th (0-based) state event of `state`. */
  state(state: StateEvent['state'], n?: number, timeoutMs?: number): Promise<StateEvent>;
  /** Resolves once a message with `body` has arrived; returns every one with it. */
  received(body: string, timeoutMs?: number): Promise<MessageFrame[]>;
}

/** Connects with `options`, recording everything; closed with `cleanup`. */
export function recorded(cleanup: Cleanup, options: ConnectOptions): Recorded {
  const wire: Wire = { urls: [], messages: [] };
  const client = connect({ WebSocket: recordingWebSocket(wire), ...options });
  const r: Recorded = {
    client,
    states: [],
    stateAt: [],
    messages: [],
    resumed: [],
    errors: [],
    wire,
    state: (state, n = 0, timeoutMs = 30_000) =>
      pollUntil(() => r.states.filter((s) => s.state === state)[n], {
        timeoutMs,
        intervalMs: 10,
        what: `${options.userId} ${state} #${n}`,
      }),
    received: (body, timeoutMs = 20_000) =>
      pollUntil(
        () => {
          const found = r.messages.filter((m) => m.body === body);
          return found.length > 0 ? found : undefined;
        },
        { timeoutMs, intervalMs: 10, what: `${options.userId} receives ${body}` },
      ),
  };
  client.on('state', (e) => {
    r.states.push(e);
    r.stateAt.push(Date.now());
  });
  client.on('message', (m) => r.messages.push(m));
  client.on('resumed', (f) => r.resumed.push(f));
  client.on('error', (e) => r.errors.push(e));
  cleanup.after(() => client.close());
  return r;
}

/** Sends probes from `from` until one to `to` is not answered `offline` (their presence crossed the bus). */
export async function untilReachable(from: Recorded, to: string): Promise<void> {
  let n = 0;
  await pollUntil(async () => (await from.client.send(to, `probe-${n++}`)).status !== 'offline', {
    timeoutMs: 20_000,
    intervalMs: 50,
    what: `${to} reachable from ${from.client.userId}`,
  });
}

/** Ids that arrived on the wire more than once. */
export function wireDuplicates(wire: Wire): string[] {
  const seen = new Map<string, number>();
  for (const m of wire.messages) seen.set(m.id, (seen.get(m.id) ?? 0) + 1);
  return [...seen].filter(([, n]) => n > 1).map(([id]) => id);
}

/** Milliseconds from the state event `lost` to the next `open`. */
export function reconnectMs(r: Recorded, lost: StateEvent): number {
  const i = r.states.indexOf(lost);
  const j = r.states.findIndex((s, k) => k > i && s.state === 'open');
  if (i < 0 || j < 0) return Number.NaN;
  return (r.stateAt[j] ?? 0) - (r.stateAt[i] ?? 0);
}
