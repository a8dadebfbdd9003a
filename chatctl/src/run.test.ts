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

  test('an HTTP answer that is not the admin API’s (public port, a node): exit 3 naming --router, for every command', async (t) => {
    // The router's public port and a node answer JSON 404s to admin paths; another service a 200 of its own.
    const notFound = await serve(
      t,
      (_req, res) =>
        void res.writeHead(404, { 'content-type': 'application/json' }).end('{"error":"NODE_ERR_NOT_FOUND"}'),
    );
    const otherJson = await serve(
      t,
      (_req, res) =>
        void res
          .writeHead(200, { 'content-type': 'application/json' })
          .end('{"ready":true,"accepting":true,"bus":true,"nodeId":"n1"}'),
    );
    const serverError = await serve(
      t,
      (_req, res) => void res.writeHead(500, { 'content-type': 'application/json' }).end('{"error":"boom"}'),
    );
    const jsonArray = await serve(t, (_req, res) => void res.end('[1,2]'));
    for (const url of [notFound, otherJson, serverError, jsonArray]) {
      for (const argv of [
        ['status'],
        ['plan', 'add', 'n9'],
        ['plan', 'remove', 'n1'],
        ['drain', 'n1'],
        ['lookup', 'alice'],
        ['lookup', '--key', 'k'],
        ['shards', '--interval', '100'],
      ]) {
        const r = await chatctl([...argv, '--router', url]);
        assert.equal(r.code, EXIT.unreachable, `${argv.join(' ')} against ${url}: ${r.stderr}`);
        assert.match(
          r.stderr,
          /^chatctl: http:\/\/\S+ is not a router admin API \([^\n]+\): check --router\n$/,
        );
        assert.equal(r.stdout, '');
      }
    }
    const r = await chatctl(['status', '--router', notFound]);
    assert.match(r.stderr, /\(\/members answered HTTP 404 NODE_ERR_NOT_FOUND\)/);
  });

  test('an unexpected failure exits 70 (a bug in chatctl), never 1 (a condition scripts act on)', async (t) => {
    const url = await serve(
      t,
      admin(() => members('v1')),
    );
    let stderr = '';
    const code = await run(['status', '--router', url], {
      stdout: {
        write: () => {
          throw new Error('EPIPE');
        },
      },
      stderr: { write: (s: string) => (stderr += s) },
      env: {},
    });
    assert.equal(code, EXIT.internal);
    assert.equal(stderr, 'chatctl: internal error (a bug in chatctl): EPIPE\n');
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

  test('status: a member whose bus (Kafka) is down is not ready: BUS no, exit 1, though the router still places on it', async (t) => {
    const url = await serve(
      t,
      admin(() =>
        members('v1', [member('a', { ready: true, bus: true }), member('b', { ready: false, bus: false })]),
      ),
    );
    const r = await chatctl(['status', '--router', url]);
    assert.equal(r.code, EXIT.condition);
    assert.match(r.stdout, /^MEMBER\s+STATE\s+READY\s+BUS\s+ALIVE\s+WEIGHT\s+SHARDS\s+CONNECTIONS\s+URL$/m);
    assert.match(r.stdout, /^a\s+active\s+yes\s+yes\s+yes\s/m);
    assert.match(r.stdout, /^b\s+active\s+no\s+no\s+yes\s/m);
    assert.match(r.stdout, /member b not ready: its bus \(Kafka\) is down/);
    const json = await chatctl(['status', '--router', url, '--json']);
    const report = JSON.parse(json.stdout) as {
      healthy: boolean;
      members: { id: string; ready: boolean; accepting: boolean; bus: boolean | null }[];
    };
    assert.equal(report.healthy, false);
    assert.deepEqual(
      report.members.map((m) => [m.id, m.ready, m.accepting, m.bus]),
      [
        ['a', true, true, true],
        ['b', false, true, false],
      ],
    );
  });

  test('status: not ready for another reason (its /readyz says so) is 1; a router without the fields: its probe, BUS ?', async (t) => {
    let view = members('v1', [member('a', { ready: false, bus: true })]);
    const url = await serve(
      t,
      admin(() => view),
    );
    const notReady = await chatctl(['status', '--router', url]);
    assert.equal(notReady.code, EXIT.condition);
    assert.match(notReady.stdout, /member a not ready \(its \/readyz says so\)/);
    view = members('v1', [member('a')]);
    const old = await chatctl(['status', '--router', url]);
    assert.equal(old.code, EXIT.ok, old.stdout);
    assert.match(old.stdout, /^a\s+active\s+yes\s+\?\s+yes\s/m);
  });

  test('status: drained on one router and draining on the other agree (a note, exit 0); another place in the table or weight is 6', async (t) => {
    const leaving = { healthy: false, inRing: false, shards: 0 };
    let one = members('v2', [member('a'), member('b', { ...leaving, adminDrained: true })]);
    let two = members('v2', [member('a'), member('b', { ...leaving, draining: true })]);
    const first = await serve(
      t,
      admin(() => one),
    );
    const second = await serve(
      t,
      admin(() => two),
    );
    const both = ['--router', first, '--router', second];
    const r = await chatctl(['status', ...both]);
    assert.equal(r.code, EXIT.ok, r.stdout);
    assert.match(r.stdout, /routers agree: yes/);
    assert.match(
      r.stdout,
      new RegExp(
        `^note: member b is drained on ${first}, draining on ${second}: drained through some routers only`,
        'm',
      ),
    );
    const json = JSON.parse((await chatctl(['status', ...both, '--json'])).stdout) as { notes: string[] };
    assert.equal(json.notes.length, 1);

    two = members('v2', [member('a'), member('b', { draining: true })]);
    const placed = await chatctl(['status', ...both]);
    assert.equal(placed.code, EXIT.disagree, 'in the table on one router, not on the other');
    assert.match(placed.stdout, /routers disagree/);
    one = members('v2', [member('a'), member('b', { weight: 2 })]);
    two = members('v2', [member('a'), member('b')]);
    assert.equal((await chatctl(['status', ...both])).code, EXIT.disagree, 'another weight');
    one = members('v2', [member('a'), member('b', { draining: true })]);
    two = members('v2', [member('a'), member('b')]);
    assert.equal(
      (await chatctl(['status', ...both])).code,
      EXIT.disagree,
      'active on one, leaving on the other',
    );
  });

  test('status --wait-version V: 0 once every router has V and is healthy; 1 when the time runs out', async (t) => {
    let calls = 0;
    const url = await serve(
      t,
      admin(() => members(++calls >= 3 ? 'v2' : 'v1')),
    );
    const r = await chatctl(['status', '--router', url, '--wait-version', 'v2', '--json']);
    assert.equal(r.code, EXIT.ok, r.stderr);
    const report = JSON.parse(r.stdout) as {
      ownerTableVersion: string;
      wait: { version: string; reached: boolean };
    };
    assert.equal(report.ownerTableVersion, 'v2');
    assert.deepEqual([report.wait.version, report.wait.reached], ['v2', true]);
    assert.ok(calls >= 3, 'polled until it changed');
    const never = await chatctl(['status', '--router', url, '--wait-version', 'v9', '--timeout', '600']);
    assert.equal(never.code, EXIT.condition);
    assert.match(never.stdout, /owner table v9 NOT reached after/);
    assert.match(never.stderr, /^progress: 0\/1 routers with owner table v9/m);
    assert.equal((await chatctl(['status', '--wait-version'])).code, EXIT.usage);
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
