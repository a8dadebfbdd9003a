// The CIDR entries of CHAT_ROUTER_TRUSTED_PROXIES (cidrProblem, cidrIsEverything): each mistake an
// operator makes gets a message that says what to write instead.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { cidrIsEverything, cidrProblem } from './fields.js';

describe('cidrProblem', () => {
  test('blocks and single addresses, IPv4 and IPv6: no problem', () => {
    for (const ok of [
      '10.0.0.0/8',
      '192.0.2.7',
      '192.0.2.7/32',
      '0.0.0.0/0',
      'fd00::/8',
      '::/0',
      '2001:db8::5',
      '::ffff:10.0.0.0/104',
      '::1/128',
    ])
      assert.equal(cidrProblem(ok), undefined, ok);
  });

  test('each mistake with its own message', () => {
    const cases: [string, string][] = [
      ['10.0.0.0/8 192.0.2.1', 'separate entries with commas, not spaces'],
      ['10.0.0.0/33', 'prefix length not 0-32'],
      ['::/129', 'prefix length not 0-128'],
      ['lb.internal', 'not an IPv4 or IPv6 address'],
      ['10.0.0.1/8', 'host bits set: the block is 10.0.0.0/8 (write that, or the address alone)'],
      ['10.0.0.0/0', 'host bits set: the block is 0.0.0.0/0 (write that, or the address alone)'],
      ['fd00::1/8', 'host bits set: the block is fd00::/8 (write that, or the address alone)'],
      [
        '::ffff:10.0.0.1/104',
        'host bits set: the block is ::ffff:a00:0/104 (write that, or the address alone)',
      ],
    ];
    for (const [text, problem] of cases) assert.equal(cidrProblem(text), problem, text);
  });
});

describe('cidrIsEverything', () => {
  test('/0 of either family; anything narrower is not', () => {
    assert.equal(cidrIsEverything('0.0.0.0/0'), true);
    assert.equal(cidrIsEverything('::/0'), true);
    for (const no of ['0.0.0.0/1', '10.0.0.0/8', '192.0.2.7', '::/1'])
      assert.equal(cidrIsEverything(no), false, no);
  });
});
