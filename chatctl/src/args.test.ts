import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { DEFAULT_ROUTER, intOption, parseArgs, routersOf, tokenOf, valueOf } from './args.js';
import { CliError, EXIT } from './exit-codes.js';

const usage = (fn: () => unknown) =>
  assert.throws(fn, (err: unknown) => err instanceof CliError && err.exitCode === EXIT.usage);

describe('parseArgs', () => {
  test('command, positionals, global options anywhere, --x=v and repeated --router', () => {
    const p = parseArgs([
      '--router',
      'http://a:1',
      'plan',
      'add',
      'n4',
      '--weight=2',
      '--json',
      '--router=http://b:2',
    ]);
    assert.equal(p.command, 'plan');
    assert.deepEqual(p.positionals, ['add', 'n4']);
    assert.deepEqual(p.options.get('router'), ['http://a:1', 'http://b:2']);
    assert.equal(valueOf(p, 'weight'), '2');
    assert.equal(p.options.has('json'), true);
  });

  test('usage errors: unknown command or option, an option of another command, missing value, arity', () => {
    usage(() => parseArgs(['frobnicate']));
    usage(() => parseArgs(['status', '--bogus']));
    usage(() => parseArgs(['status', '--weight', '2']));
    usage(() => parseArgs(['status', '--router']));
    usage(() => parseArgs(['status', '--json=yes']));
    usage(() => parseArgs(['status', 'extra']));
    usage(() => parseArgs(['drain']));
    usage(() => parseArgs(['plan', 'add']));
    usage(() => parseArgs(['status', '-x']));
  });

  test('--help and -h are answered whatever else is missing', () => {
    assert.equal(parseArgs(['drain', '--help']).options.has('help'), true);
    assert.equal(parseArgs(['-h']).command, undefined);
  });
});

describe('option values', () => {
  test('intOption: whole numbers within bounds only', () => {
    assert.equal(intOption(parseArgs(['shards', '--top', '5']), 'top', 0, 10), 5);
    assert.equal(intOption(parseArgs(['shards']), 'top', 0, 10), undefined);
    for (const bad of ['-1', '1.5', 'x', '11'])
      usage(() => intOption(parseArgs(['shards', `--top=${bad}`]), 'top', 0, 10));
  });

  test('routersOf: --router, else CHAT_ROUTER_ADMIN_URL (a list), else the default; URLs checked', () => {
    assert.deepEqual(
      routersOf(parseArgs(['status', '--router', 'http://x:1']), { CHAT_ROUTER_ADMIN_URL: 'http://y:2' }),
      ['http://x:1'],
    );
    assert.deepEqual(routersOf(parseArgs(['status']), { CHAT_ROUTER_ADMIN_URL: 'http://y:2, http://z:3' }), [
      'http://y:2',
      'http://z:3',
    ]);
    assert.deepEqual(routersOf(parseArgs(['status']), {}), [DEFAULT_ROUTER]);
    usage(() => routersOf(parseArgs(['status', '--router', 'localhost:8090']), {}));
    usage(() => routersOf(parseArgs(['status', '--router', 'ftp://x']), {}));
  });

  test('tokenOf: --token, else --token-file (trimmed), else CHAT_ROUTER_ADMIN_TOKEN; an unreadable file is a usage error', () => {
    const env = { CHAT_ROUTER_ADMIN_TOKEN: 'from-env' };
    const files = (path: string) => {
      if (path === 'tok') return 'from-file\n';
      throw Object.assign(new Error('nope'), { code: 'ENOENT' });
    };
    assert.equal(tokenOf(parseArgs(['status', '--token', 't']), env, files), 't');
    assert.equal(tokenOf(parseArgs(['status', '--token-file', 'tok']), env, files), 'from-file');
    assert.equal(tokenOf(parseArgs(['status']), env, files), 'from-env');
    assert.equal(tokenOf(parseArgs(['status']), {}, files), undefined);
    usage(() => tokenOf(parseArgs(['status', '--token-file', 'missing']), env, files));
  });
});
