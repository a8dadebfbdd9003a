// Trusted proxies (CHAT_ROUTER_TRUSTED_PROXIES): address forms, CIDR matching, and the X-Forwarded-For
// walk with the ways a client tries to pass for another address.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { isChatError, loadConfig, routerConfigSchema } from '@chat/shared';
import { TrustedProxies, canonicalAddress } from './trusted-proxies.js';

describe('canonicalAddress', () => {
  test('one text per address: IPv6 compressed and lower-case, IPv4-mapped IPv6 as IPv4, ports dropped', () => {
    const cases: [string, string][] = [
      ['192.0.2.7', '192.0.2.7'],
      [' 192.0.2.7 ', '192.0.2.7'],
      ['192.0.2.7:8443', '192.0.2.7'],
      ['::ffff:127.0.0.1', '127.0.0.1'],
      ['::FFFF:7f00:1', '127.0.0.1'],
      ['[::ffff:203.0.113.9]:80', '203.0.113.9'],
      ['2001:DB8:0:0:0:0:0:1', '2001:db8::1'],
      ['[2001:db8::1]', '2001:db8::1'],
      ['[2001:db8::1]:443', '2001:db8::1'],
      ['::1', '::1'],
    ];
    for (const [text, expected] of cases) assert.equal(canonicalAddress(text), expected, text);
  });

  test('anything else: undefined', () => {
    for (const text of [
      '',
      'unknown',
      'host.example',
      '1.2.3',
      '01.2.3.4',
      '1.2.3.4.5',
      'fe80::1%eth0',
      '[::1',
      '::1]:80',
    ])
      assert.equal(canonicalAddress(text), undefined, text);
  });
});

describe('TrustedProxies#trusts', () => {
  test('IPv4 and IPv6 blocks, single addresses, their edges', () => {
    const proxies = new TrustedProxies(['10.0.0.0/8', '192.0.2.7', 'fd00::/8', '2001:db8::5']);
    const yes = ['10.0.0.0', '10.255.255.255', '192.0.2.7', 'fd00::1', 'fdff:ffff::1', '2001:db8::5'];
    const no = ['9.255.255.255', '11.0.0.0', '192.0.2.8', 'fe00::1', '2001:db8::6', '127.0.0.1', '::1'];
    for (const a of yes) assert.equal(proxies.trusts(a), true, a);
    for (const a of no) assert.equal(proxies.trusts(a), false, a);
  });

  test('IPv4 against IPv4-mapped blocks and the reverse', () => {
    assert.equal(new TrustedProxies(['127.0.0.0/8']).trusts('::ffff:127.0.0.1'), true);
    assert.equal(new TrustedProxies(['::ffff:10.0.0.0/104']).trusts('10.1.2.3'), true);
    assert.equal(new TrustedProxies(['::ffff:10.0.0.0/104']).trusts('11.1.2.3'), false);
  });

  test('nothing is trusted by default; /0 trusts everything of its family', () => {
    const none = new TrustedProxies([]);
    assert.equal(none.size, 0);
    assert.equal(none.trusts('127.0.0.1'), false);
    const all4 = new TrustedProxies(['0.0.0.0/0']);
    assert.equal(all4.trusts('203.0.113.1'), true);
    assert.equal(all4.trusts('2001:db8::1'), false);
  });

  test('an entry that is not a block or an address: CONFIG_ERR_INVALID naming it', () => {
    for (const bad of [
      '10.0.0.0/33',
      '::/129',
      '10.0.0.0/',
      '10.0.0.0/8/8',
      '10.0.0.0/-1',
      'fe80::1%eth0',
      'lb.internal',
    ]) {
      assert.throws(
        () => new TrustedProxies([bad]),
        (err: unknown) => isChatError(err, 'CONFIG_ERR_INVALID') && err.message.includes(bad),
        bad,
      );
    }
  });
});

describe('TrustedProxies: entries that are not what was meant', () => {
  const refusal = (entries: string[]) => {
    try {
      new TrustedProxies(entries);
    } catch (err) {
      assert.ok(isChatError(err, 'CONFIG_ERR_INVALID'));
      return err.message;
    }
    assert.fail(`${entries.join(',')} accepted`);
  };

  test('entries separated by a space: "separate entries with commas", not a bad prefix length', () => {
    const message = refusal(['10.0.0.0/8 192.0.2.1']);
    assert.match(message, /separate entries with commas/);
    assert.doesNotMatch(message, /prefix length/);
    assert.match(refusal(['192.0.2.1 192.0.2.2']), /separate entries with commas/);
  });

  test('a block with host bits set is refused, naming its network address', () => {
    const cases: [string, string][] = [
      ['10.0.0.1/8', '10.0.0.0/8'],
      ['10.1.0.0/15', '10.0.0.0/15'],
      ['192.0.2.7/24', '192.0.2.0/24'],
      ['fd00::1/8', 'fd00::/8'],
      ['2001:db8::1:0:0:1/96', '2001:db8:0:0:1::/96'],
      ['::ffff:10.0.0.1/104', '::ffff:a00:0/104'],
    ];
    for (const [entry, network] of cases) {
      const message = refusal([entry]);
      assert.ok(message.includes(`${entry}: host bits set: the block is ${network} (`), message);
    }
  });

  test('network addresses, single addresses and /0 are accepted', () => {
    const ok = ['10.0.0.0/8', '10.0.0.0/15', '192.0.2.7/32', '192.0.2.7', 'fd00::/8', '::ffff:10.0.0.0/104'];
    assert.equal(new TrustedProxies(ok).size, ok.length);
    assert.equal(new TrustedProxies(['0.0.0.0/0', '::/0']).size, 2);
  });

  test('`everything` names the entries that trust every address (the router warns at start-up)', () => {
    assert.deepEqual(new TrustedProxies(['0.0.0.0/0', '10.0.0.0/8', '::/0']).everything, [
      '0.0.0.0/0',
      '::/0',
    ]);
    assert.deepEqual(new TrustedProxies(['10.0.0.0/8', '0.0.0.0/1']).everything, []);
  });
});

describe('CHAT_ROUTER_TRUSTED_PROXIES', () => {
  test('a space instead of a comma, host bits set: the configuration error says what to write', () => {
    assert.throws(
      () =>
        loadConfig(routerConfigSchema, { CHAT_ROUTER_TRUSTED_PROXIES: '10.0.0.0/8 192.0.2.1, 10.0.0.1/8' }),
      (err: unknown) =>
        isChatError(err, 'CONFIG_ERR_INVALID') &&
        err.message.includes('10.0.0.0/8 192.0.2.1 (separate entries with commas, not spaces)') &&
        err.message.includes('10.0.0.1/8 (host bits set: the block is 10.0.0.0/8'),
    );
  });

  test('empty by default; a list of blocks loads; bad items are all named in one error', () => {
    assert.deepEqual(loadConfig(routerConfigSchema, {}).trustedProxies, []);
    const config = loadConfig(routerConfigSchema, {
      CHAT_ROUTER_TRUSTED_PROXIES: '10.0.0.0/8, fd00::/8 ,192.0.2.7',
    });
    assert.deepEqual(config.trustedProxies, ['10.0.0.0/8', 'fd00::/8', '192.0.2.7']);
    assert.throws(
      () =>
        loadConfig(routerConfigSchema, {
          CHAT_ROUTER_TRUSTED_PROXIES: '10.0.0.0/8,10.0.0.0/40,ingress,::/200',
        }),
      (err: unknown) =>
        isChatError(err, 'CONFIG_ERR_INVALID') &&
        /CHAT_ROUTER_TRUSTED_PROXIES/.test(err.message) &&
        ['10.0.0.0/40', 'ingress', '::/200'].every((item) => err.message.includes(item)) &&
        !(err.message.split('bad item(s): ')[1] ?? '').includes('10.0.0.0/8 '),
    );
  });
});

describe('TrustedProxies#resolve', () => {
  const proxies = new TrustedProxies(['10.0.0.0/8', '127.0.0.1', 'fd00::/8']);

  test('an untrusted peer is the client whatever its header says', () => {
    for (const xff of [undefined, '198.51.100.1', '10.0.0.1', '198.51.100.1, 10.0.0.9'])
      assert.deepEqual(proxies.resolve('203.0.113.5', xff), {
        address: '203.0.113.5',
        chain: ['203.0.113.5'],
        source: 'peer',
      });
    assert.equal(new TrustedProxies([]).resolve('10.0.0.1', '198.51.100.1').address, '10.0.0.1');
  });

  test('a trusted peer: the rightmost untrusted entry; what a client prepends is never reached', () => {
    assert.deepEqual(proxies.resolve('10.0.0.2', '198.51.100.1'), {
      address: '198.51.100.1',
      chain: ['198.51.100.1', '10.0.0.2'],
      source: 'forwarded',
    });
    // The client wrote "1.1.1.1, 10.0.0.3" itself; the proxy appended the address it saw.
    assert.deepEqual(proxies.resolve('10.0.0.2', '1.1.1.1, 10.0.0.3, 198.51.100.1'), {
      address: '198.51.100.1',
      chain: ['198.51.100.1', '10.0.0.2'],
      source: 'forwarded',
    });
    // Junk left of the client is not looked at either.
    assert.equal(proxies.resolve('10.0.0.2', 'not-an-ip, <script>, 198.51.100.1').address, '198.51.100.1');
  });

  test('trusted hops are skipped: two proxies in a row', () => {
    assert.deepEqual(proxies.resolve('10.0.0.2', '1.1.1.1, 198.51.100.1, 10.0.0.7'), {
      address: '198.51.100.1',
      chain: ['198.51.100.1', '10.0.0.7', '10.0.0.2'],
      source: 'forwarded',
    });
  });

  test('every entry trusted: the leftmost', () => {
    assert.deepEqual(proxies.resolve('10.0.0.2', '10.9.9.9, 10.0.0.7'), {
      address: '10.9.9.9',
      chain: ['10.9.9.9', '10.0.0.7', '10.0.0.2'],
      source: 'forwarded',
    });
  });

  test('no header, an empty one, or an unreadable entry before the client: the peer', () => {
    for (const xff of [undefined, '', '  ', []])
      assert.deepEqual(proxies.resolve('10.0.0.2', xff), {
        address: '10.0.0.2',
        chain: ['10.0.0.2'],
        source: 'peer',
      });
    for (const xff of [
      '198.51.100.1, garbage',
      '198.51.100.1,',
      'unknown',
      '198.51.100.1, 10.0.0.7, 300.1.1.1',
    ])
      assert.deepEqual(
        proxies.resolve('10.0.0.2', xff),
        { address: '10.0.0.2', chain: ['10.0.0.2'], source: 'malformed' },
        xff,
      );
  });

  test('several X-Forwarded-For headers are one list, in order', () => {
    assert.equal(proxies.resolve('10.0.0.2', ['1.1.1.1', '198.51.100.1, 10.0.0.7']).address, '198.51.100.1');
    assert.equal(proxies.resolve('10.0.0.2', ['198.51.100.1', '10.0.0.7']).address, '198.51.100.1');
  });

  test('IPv6 and IPv4-mapped IPv6 peers and entries', () => {
    // A dual-stack listener reports an IPv4 proxy as ::ffff:127.0.0.1.
    assert.deepEqual(proxies.resolve('::ffff:127.0.0.1', '2001:DB8::7'), {
      address: '2001:db8::7',
      chain: ['2001:db8::7', '127.0.0.1'],
      source: 'forwarded',
    });
    assert.equal(proxies.resolve('fd00::10', '[2001:db8::8]:51000, fd00::11').address, '2001:db8::8');
    assert.equal(proxies.resolve('fd00::10', '::ffff:198.51.100.1').address, '198.51.100.1');
    // A mapped untrusted peer is the client, in IPv4 form: one key per client for the limiter.
    assert.equal(proxies.resolve('::ffff:203.0.113.5', '198.51.100.1').address, '203.0.113.5');
    // A client cannot pass a trusted address in mapped form for an untrusted one, or the reverse.
    assert.equal(proxies.resolve('10.0.0.2', '198.51.100.1, ::ffff:10.0.0.7').address, '198.51.100.1');
  });

  test('a peer without an address (a socket already gone): "unknown"', () => {
    assert.equal(proxies.resolve(undefined, '198.51.100.1').address, 'unknown');
  });
});
