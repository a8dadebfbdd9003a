import { readFileSync } from 'node:fs';
import { flag, intOption, parseArgs, routersOf, tokenOf, valueOf, type ParsedArgs } from './args.js';
import { drainExitCode, drainNode, renderDrain } from './commands/drain.js';
import { lookup, lookupExitCode, renderLookup } from './commands/lookup.js';
import { plan, renderPlan } from './commands/plan.js';
import { renderShards, shards } from './commands/shards.js';
import { renderStatus, status, statusExitCode, waitForVersion } from './commands/status.js';
import { CliError, EXIT } from './exit-codes.js';
import { helpText } from './help.js';
import { HttpError, type ConnectOptions } from './http.js';
import { progressFor, type ProgressStream } from './progress.js';

/** Where a run writes and what it reads: the process's streams and environment, or a test's. */
export interface RunIo {
  readonly stdout: { write(text: string): unknown };
  readonly stderr: ProgressStream;
  readonly env: Readonly<Record<string, string | undefined>>;
  readonly readFile?: (path: string) => string;
}

/** What a command produced: the exit code and what to print (`--json` or the human view). */
interface Outcome {
  readonly exitCode: number;
  readonly json: unknown;
  readonly text: string;
}

const MAX_TIMEOUT_MS = 24 * 3600 * 1000;

/**
 * Runs one chatctl command line and returns its exit code. The result goes to stdout (a table, or one
 * JSON document with `--json`); progress and errors go to stderr, errors as one `chatctl: ...` line with
 * the documented exit code, never a stack trace.
 */
export async function run(argv: readonly string[], io: RunIo): Promise<number> {
  try {
    const parsed = parseArgs(argv);
    if (flag(parsed, 'help') || parsed.command === undefined) {
      io.stdout.write(helpText(parsed.command));
      return parsed.command === undefined && !flag(parsed, 'help') ? EXIT.usage : EXIT.ok;
    }
    const connect: ConnectOptions = {
      routers: routersOf(parsed, io.env),
      ...optional('token', tokenOf(parsed, io.env, io.readFile ?? ((p) => readFileSync(p, 'utf8')))),
      ...optional('timeoutMs', intOption(parsed, 'timeout', 1, MAX_TIMEOUT_MS)),
    };
    const outcome = await dispatch(parsed, connect, io);
    io.stdout.write(flag(parsed, 'json') ? `${JSON.stringify(outcome.json, null, 2)}\n` : outcome.text);
    return outcome.exitCode;
  } catch (caught) {
    // An HTTP answer no command expected: the URL is not a router's admin API (exit 3).
    const err = caught instanceof HttpError ? caught.notAdminApi() : caught;
    if (err instanceof CliError) {
      io.stderr.write(`chatctl: ${err.message}\n`);
      return err.exitCode;
    }
    // Never 1: scripts read 1 as "the cluster condition is false".
    io.stderr.write(
      `chatctl: internal error (a bug in chatctl): ${err instanceof Error ? err.message : String(err)}\n`,
    );
    return EXIT.internal;
  }
}

/** `{ [key]: value }` when the value is defined, else nothing (exact optional properties). */
function optional<K extends string, V>(key: K, value: V | undefined): { [P in K]?: V } {
  return value === undefined ? {} : ({ [key]: value } as { [P in K]: V });
}

async function dispatch(p: ParsedArgs, connect: ConnectOptions, io: RunIo): Promise<Outcome> {
  const [first = '', second = ''] = p.positionals;
  switch (p.command) {
    case 'status': {
      const version = valueOf(p, 'wait-version');
      const r =
        version === undefined
          ? await status(connect)
          : await waitForVersion({
              ...connect,
              version,
              progress: progressFor(io.stderr, flag(p, 'json') ? 'none' : 'auto'),
            });
      return { exitCode: statusExitCode(r), json: r, text: renderStatus(r) };
    }
    case 'plan': {
      if (first !== 'add' && first !== 'remove') {
        throw new CliError(EXIT.usage, 'plan: say add NODE or remove NODE');
      }
      const weight = intOption(p, 'weight', 1, 1000);
      if (first === 'remove' && weight !== undefined) {
        throw new CliError(EXIT.usage, 'plan remove takes no --weight');
      }
      const r = await plan(
        connect,
        first === 'add' ? { add: second, ...optional('weight', weight) } : { remove: second },
      );
      return { exitCode: EXIT.ok, json: r, text: renderPlan(r) };
    }
    case 'drain':
    case 'undrain': {
      const r = await drainNode(
        {
          ...connect,
          node: first,
          wait: !flag(p, 'no-wait'),
          progress: progressFor(io.stderr, flag(p, 'json') ? 'none' : 'auto'),
        },
        p.command,
      );
      return { exitCode: drainExitCode(r), json: r, text: renderDrain(r) };
    }
    case 'lookup': {
      const key = valueOf(p, 'key');
      if (p.positionals.length === 0 && key === undefined) {
        throw new CliError(EXIT.usage, 'lookup: give USER, or --key KEY');
      }
      const r = await lookup(
        connect,
        p.positionals.length > 0 ? { user: first, ...optional('key', key) } : { key: key ?? '' },
      );
      return { exitCode: lookupExitCode(r), json: r, text: renderLookup(r) };
    }
    case 'shards': {
      const r = await shards({
        ...connect,
        ...optional('top', intOption(p, 'top', 0, 1_000_000)),
        ...optional('intervalMs', intOption(p, 'interval', 100, 60_000)),
      });
      return { exitCode: EXIT.ok, json: r, text: renderShards(r) };
    }
    case undefined:
      throw new CliError(EXIT.usage, 'no command');
  }
}
