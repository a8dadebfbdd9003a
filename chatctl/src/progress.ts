/** Where progress goes: stderr, so stdout stays the command's result. */
export interface ProgressStream {
  write(text: string): unknown;
  readonly isTTY?: boolean;
}

/** Reports a wait's progress: `done` of `total`, with a few words on what is left. */
export interface Progress {
  update(done: number, total: number, detail: string): void;
  /** The wait is over: a bar ends its line. */
  end(): void;
}

const WIDTH = 30;

/** `[#########---------------------] 12/40`: the bar alone (pure: unit-tested). */
export function bar(done: number, total: number): string {
  const fraction = total <= 0 ? 1 : Math.min(1, Math.max(0, done / total));
  const filled = Math.round(fraction * WIDTH);
  return `[${'#'.repeat(filled)}${'-'.repeat(WIDTH - filled)}] ${done}/${total}`;
}

/**
 * A progress bar redrawn in place on a terminal; plain lines otherwise (one when something changed, at
 * most one per `lineIntervalMs`, so a log stays short); nothing at all with `--json`.
 */
export function progressFor(
  stream: ProgressStream,
  mode: 'auto' | 'none',
  lineIntervalMs = 1000,
  now: () => number = Date.now,
): Progress {
  if (mode === 'none') return { update: () => undefined, end: () => undefined };
  if (stream.isTTY) {
    let drawn = false;
    return {
      update(done, total, detail) {
        drawn = true;
        stream.write(`\r\x1b[2K${bar(done, total)} ${detail}`);
      },
      end() {
        if (drawn) stream.write('\n');
      },
    };
  }
  let last = '';
  let lastAt = -Infinity;
  return {
    update(done, total, detail) {
      const line = `${done}/${total} ${detail}`;
      if (line === last || now() - lastAt < lineIntervalMs) return;
      last = line;
      lastAt = now();
      stream.write(`progress: ${line}\n`);
    },
    end: () => undefined,
  };
}
