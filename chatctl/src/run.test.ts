// The command line end to end against stand-in admin APIs on 127.0.0.1 port 0: exit codes and the
// one-line errors (the live cluster is in test/src/chatctl/).
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { describe, test, type TestContext } from 'node:test';
import type { MembersAnswer } from './admin-types.js';
import { EXIT } from './exit-codes.js';
import { run } from './run.js';

async function serve(
  t: TestContext,
  handler: (req: IncomingMessage, res: ServerResponse) => void,
): Promise<string> {
  const server = createServer(handler);
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  t.after(() => {
    server.closeAllConnections();
    return new Promise((resolve) => server.close(resolve));
  });
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

/** A port nothing listens on (it was free a moment ago). */
async function closedPort(): Promise<string> {
  const server = createServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as AddressInfo;
  await new Promise((resolve) => server.close(resolve));
  return `http://127.0.0.1:${port}`;
}

const member = (id: string, extra: Partial<MembersAnswer['members'][number]> = {}) => ({
  id,
  url: `http://127.0.0.1:1/${id}`,
  weight: 1,
  state: 'active',
  healthy: true,
  adminDrained: false,
  draining: false,
  probed: true,
  reachable: true,
  inRing: true,
  shards: 4,
  connections: 1,
  ...extra,
});

const members = (version: string, list = [member('a'), member('b')]): MembersAnswer => ({
  router: { ready: true, settled: true },
  ownerTableVersion: version,
  shards: 8,
  ringVersion: 'r',
  ringSize: list.length,
  members: list,
});

/** A stand-in router admin API: /members from `view`, a bearer token when `token` is set. */
function admin(view: () => MembersAnswer, token?: string) {
  return (req: IncomingMessage, res: ServerResponse) => {
    const json = (status: number, body: unknown) =>
      void res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(body));
    if (token && req.headers.authorization !== `Bearer ${token}`)
      return json(401, { error: 'AUTH_ERR_UNAUTHORIZED' });
    if (req.url === '/members') return json(200, view());
    if (req.method === 'POST' && req.url?.startsWith('/nodes/'))
      return json(404, { error: 'ROUTER_ERR_UNKNOWN_NODE' });
    return json(404, { error: 'ROUTER_ERR_NOT_FOUND' });
  };
}

async function chatctl(argv: string[], env: Record<string, string> = {}) {
  let stdout = '';
  let stderr = '';
  const code = await run(argv, {
    stdout: { write: (s: string) => (stdout += s) },
    stderr: { write: (s: string) => (stderr += s) },
    env,
  });
  return { code, stdout, stderr };
}

describe('run', () => {
  test('--help is 0 with the command list; no command is 2; a command’s help names its exit codes', async () => {
    const help = await chatctl(['--help']);
    assert.equal(help.code, EXIT.ok);
    assert.match(help.stdout, /plan add NODE/);
    assert.equal((await chatctl([])).code, EXIT.usage);
    const drain = await chatctl(['drain', '--help']);
    assert.equal(drain.code, EXIT.ok);
    assert.match(drain.stdout, /Exit: 0 done/);
  });

  test('usage errors: exit 2, one line on stderr, nothing on stdout', async () => {
    for (const argv of [
      ['nope'],
      ['status', '--timeout', '0'],
      ['plan', 'move', 'x'],
      ['plan', 'remove', 'x', '--weight', '2'],
      ['lookup'],
    ]) {
      const r = await chatctl(argv);
      assert.equal(r.code, EXIT.usage, argv.join(' '));
      assert.match(r.stderr, /^chatctl: [^\n]+\n$/);
      assert.equal(r.stdout, '');
    }
  });

  test('an unreachable router: exit 3 and one line naming it', async () => {
    const url = await closedPort();
    const r = await chatctl(['status', '--router', url]);
    assert.equal(r.code, EXIT.unreachable);
    assert.equal(r.stderr, `chatctl: router ${url} unreachable (ECONNREFUSED)\n`);
  });

  test('a router that does not answer in time: exit 3', async (t) => {
    const url = await serve(t, () => undefined);
    const r = await chatctl(['status', '--router', url, '--timeout', '200']);
    assert.equal(r.code, EXIT.unreachable);
    assert.match(r.stderr, /no answer within \d+ ms/);
  });

  test('something that is not an admin API (not JSON): exit 3', async (t) => {
    const url = await serve(t, (_req, res) => void res.end('<html>'));
    const r = await chatctl(['status', '--router', url]);
    assert.equal(r.code, EXIT.unreachable);
    assert.match(r.stderr, /is not a router admin API/);
  });

  test('a refused token: exit 4; the token from the environment is sent', async (t) => {
    const url = await serve(
      t,
      admin(() => members('v1'), 'right-token'),
    );
    const bad = await chatctl(['status', '--router', url, '--token', 'wrong']);
    assert.equal(bad.code, EXIT.auth);
    assert.match(bad.stderr, /^chatctl: router \S+ refused the token \(HTTP 401\)/);
    const good = await chatctl(['status', '--router', url], { CHAT_ROUTER_ADMIN_TOKEN: 'right-token' });
    assert.equal(good.code, EXIT.ok, good.stderr);
  });

  test('status: healthy 0 (--json shape), a member not ready 1, routers that disagree 6', async (t) => {
    let view = members('v1');
    const one = await serve(
      t,
      admin(() => view),
    );
    const two = await serve(
      t,
      admin(() => members('v1')),
    );
    const ok = await chatctl(['status', '--router', one, '--router', two, '--json']);
    assert.equal(ok.code, EXIT.ok);
    const report = JSON.parse(ok.stdout) as {
      healthy: boolean;
      agree: boolean;
      members: { connections: number }[];
    };
    assert.deepEqual([report.healthy, report.agree], [true, true]);
    assert.deepEqual(
      report.members.map((m) => m.connections),
      [2, 2],
      'summed over both routers',
    );
    view = members('v1', [member('a'), member('b', { healthy: false })]);
    const sick = await chatctl(['status', '--router', one]);
    assert.equal(sick.code, EXIT.condition);
    assert.match(sick.stdout, /member b not ready/);
    view = members('v1', [member('a'), member('b', { adminDrained: true, healthy: false, inRing: false })]);
    assert.equal(
      (await chatctl(['status', '--router', one])).code,
      EXIT.ok,
      'a drained member is not a fault',
    );
    const apart = await chatctl(['status', '--router', one, '--router', two]);
    assert.equal(apart.code, EXIT.disagree);
    assert.match(apart.stdout, /routers agree: NO/);
  });

  test('unknown node: plan remove, drain; plan add of a member: exit 5', async (t) => {
    const url = await serve(
      t,
      admin(() => members('v1')),
    );
    for (const argv of [
      ['plan', 'remove', 'zz'],
      ['drain', 'zz'],
      ['undrain', 'zz'],
      ['plan', 'add', 'a'],
    ]) {
      const r = await chatctl([...argv, '--router', url]);
      assert.equal(r.code, EXIT.notFound, argv.join(' '));
      assert.match(r.stderr, /^chatctl: node \S+ is (not|already) a member\n$/);
    }
  });
});
