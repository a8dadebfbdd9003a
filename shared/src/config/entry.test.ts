import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { createServer, type Server } from 'node:net';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { describe, test } from 'node:test';
import { describeListenError } from './entry.js';

/** The error a real `listen` on a taken 127.0.0.1 port gives. */
async function listenError(t: {
  after(fn: () => Promise<void>): void;
}): Promise<{ err: Error; port: number }> {
  const taken: Server = createServer();
  taken.listen(0, '127.0.0.1');
  await once(taken, 'listening');
  t.after(() => new Promise<void>((resolve) => taken.close(() => resolve())));
  const port = (taken.address() as { port: number }).port;
  const second = createServer();
  second.listen(port, '127.0.0.1');
  const [err] = (await once(second, 'error')) as [Error];
  return { err, port };
}

describe('describeListenError', () => {
  test('a taken port: the address, the code and the variable that moves it', async (t) => {
    const { err, port } = await listenError(t);
    const line = describeListenError(err, [
      { env: 'CHAT_T_PORT', host: '127.0.0.1', port },
      { env: 'CHAT_T_ADMIN_PORT', host: '127.0.0.1', port: port + 1 },
    ]);
    assert.ok(line !== undefined);
    assert.ok(line.includes(`127.0.0.1:${port}`), line);
    assert.ok(line.includes('EADDRINUSE'), line);
    assert.ok(line.includes('CHAT_T_PORT') && !line.includes('CHAT_T_ADMIN_PORT'), line);
    assert.ok(!line.includes('\n'), line);
  });

  test('two listeners on one port are told apart by host', async (t) => {
    const { err, port } = await listenError(t);
    const line = describeListenError(err, [
      { env: 'CHAT_T_PUBLIC_PORT', host: '0.0.0.0', port },
      { env: 'CHAT_T_ADMIN_PORT', host: '127.0.0.1', port },
    ]);
    assert.ok(line?.includes('CHAT_T_ADMIN_PORT') && !line.includes('CHAT_T_PUBLIC_PORT'), line);
  });

  test('a listener the caller did not name: the address without a variable', async (t) => {
    const { err, port } = await listenError(t);
    const line = describeListenError(err, []);
    assert.ok(line?.includes(`127.0.0.1:${port}`) && !line.includes('set '), line);
  });

  test('anything but a failed listen is not described', () => {
    const refused = Object.assign(new Error('connect ECONNREFUSED'), {
      code: 'ECONNREFUSED',
      syscall: 'connect',
    });
    assert.equal(
      describeListenError(refused, [{ env: 'CHAT_T_PORT', host: '127.0.0.1', port: 1 }]),
      undefined,
    );
    assert.equal(describeListenError('EADDRINUSE', []), undefined);
  });
});

test('exitOnSignal: a second SIGINT during shutdown is ignored, the stop finishes and sets the exit code', async (t) => {
  const entry = fileURLToPath(new URL('./entry.ts', import.meta.url));
  // stop() waits for a line on stdin, so the test decides when shutdown ends.
  const script = `
    import { exitOnSignal } from ${JSON.stringify(entry)};
    import { createInterface } from 'node:readline';
    const input = createInterface({ input: process.stdin });
    exitOnSignal(async (signal) => {
      console.log('stopping ' + signal);
      await new Promise((resolve) => input.once('line', resolve));
      return 7;
    });
    setInterval(() => {}, 1000);
    console.log('ready');`;
  const child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], {
    stdio: ['pipe', 'pipe', 'inherit'],
  });
  const exited = once(child, 'exit') as Promise<[number | null, NodeJS.Signals | null]>;
  t.after(async () => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    await exited;
  });
  const lines = createInterface({ input: child.stdout })[Symbol.asyncIterator]();
  assert.equal((await lines.next()).value, 'ready');
  child.kill('SIGINT');
  assert.equal((await lines.next()).value, 'stopping SIGINT');
  child.kill('SIGINT'); // Ctrl-C's copy passed on by a parent, or a second press
  child.kill('SIGTERM');
  // Both were handled (not fatal) once the child is still there to read this line and exit with 7.
  child.stdin.end('done\n');
  assert.deepEqual(await exited, [7, null]);
});
