// The benchmark's memory method, shared by run.ts (phase 5) and router-memory.ts: a forced GC and the
// heap in use read from outside the process over the DevTools protocol (no hook in the service code),
// and RSS from /proc.
import { readFileSync } from 'node:fs';
import { setTimeout as delay } from 'node:timers/promises';
import WebSocket from 'ws';
import { pollUntil } from '../poll.js';

/** Resident set size of a process in bytes (0 without a pid). */
export function rssBytes(pid: number | undefined): number {
  if (pid === undefined) return 0;
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return Number(m?.[1] ?? 0) * 1024;
}

export const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? NaN;

/** A DevTools protocol client for a process started with `--inspect=127.0.0.1:PORT`. */
export class Inspector {
  readonly #ws: WebSocket;
  #id = 0;
  readonly #waiting = new Map<number, (r: unknown) => void>();
  private constructor(ws: WebSocket) {
    this.#ws = ws;
    ws.on('message', (data: Buffer) => {
      const m = JSON.parse(data.toString()) as { id?: number; result?: unknown };
      if (m.id !== undefined) this.#waiting.get(m.id)?.(m.result);
    });
  }
  static async attach(port: number): Promise<Inspector> {
    const list = await pollUntil(
      async () => {
        const targets = (await (await fetch(`http://127.0.0.1:${port}/json/list`)).json()) as {
          webSocketDebuggerUrl: string;
        }[];
        return targets[0];
      },
      { timeoutMs: 10_000, what: 'inspector target' },
    );
    const ws = new WebSocket(list.webSocketDebuggerUrl);
    await new Promise((resolve, reject) => {
      ws.once('open', resolve);
      ws.once('error', reject);
    });
    return new Inspector(ws);
  }
  call<T>(method: string): Promise<T> {
    const id = ++this.#id;
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`${method}: no answer`)), 30_000);
      this.#waiting.set(id, (r) => {
        clearTimeout(timer);
        this.#waiting.delete(id);
        resolve(r as T);
      });
      this.#ws.send(JSON.stringify({ id, method }));
    });
  }
  /** Two full GCs, then RSS (median of 5 samples 200 ms apart) and the JS heap in use. */
  async steady(pid: number | undefined): Promise<{ rss: number; heap: number }> {
    await this.call('HeapProfiler.collectGarbage');
    await delay(200);
    await this.call('HeapProfiler.collectGarbage');
    const samples: number[] = [];
    for (let i = 0; i < 5; i++) {
      await delay(200);
      samples.push(rssBytes(pid));
    }
    const { usedSize } = await this.call<{ usedSize: number }>('Runtime.getHeapUsage');
    return { rss: median(samples), heap: usedSize };
  }
  close(): void {
    this.#ws.close();
  }
}
