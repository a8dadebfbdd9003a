import assert from 'node:assert/strict';
import { test } from 'node:test';
import { isChatError } from '../errors.js';
import { bool, int, list, oneOf, str, HOST_PORT } from './fields.js';
import { loadConfig } from './load.js';
import { KNOWN_ENV, nodeConfigSchema } from './schemas.js';

const schema = {
  port: int({ env: 'CHAT_T_PORT', default: 80, min: 0, max: 65535, doc: 'port' }),
  name: str({ env: 'CHAT_T_NAME', default: 'x', pattern: /^[a-z]+$/, doc: 'name' }),
  on: bool({ env: 'CHAT_T_ON', default: false, doc: 'on' }),
  mode: oneOf({ env: 'CHAT_T_MODE', default: 'a', values: ['a', 'b'] as const, doc: 'mode' }),
  brokers: list({ env: 'CHAT_T_BROKERS', default: [], item: HOST_PORT, doc: 'brokers' }),
  secret: str({ env: 'CHAT_T_SECRET', default: '', secret: true, pattern: /^[a-z]+$/, doc: 'secret' }),
};

test('unset and empty variables take the defaults', () => {
  const config = loadConfig(schema, { CHAT_T_PORT: '', CHAT_T_NAME: '  ' });
  assert.deepEqual({ ...config }, { port: 80, name: 'x', on: false, mode: 'a', brokers: [], secret: '' });
});

test('values are parsed to their types and the result is frozen', () => {
  const config = loadConfig(schema, {
    CHAT_T_PORT: '8_080',
    CHAT_T_NAME: 'abc',
    CHAT_T_ON: 'YES',
    CHAT_T_MODE: 'b',
    CHAT_T_BROKERS: '127.0.0.1:9092, kafka-1:9092 ,',
  });
  assert.equal(config.port, 8080);
  assert.equal(config.on, true);
  assert.equal(config.mode, 'b');
  assert.deepEqual(config.brokers, ['127.0.0.1:9092', 'kafka-1:9092']);
  assert.ok(Object.isFrozen(config));
  assert.ok(Object.isFrozen(config.brokers));
  assert.throws(() => {
    (config as { port: number }).port = 1;
  }, TypeError);
});

test('every problem is reported at once with CONFIG_ERR_INVALID, secrets redacted', () => {
  let caught: unknown;
  try {
    loadConfig(schema, {
      CHAT_T_PORT: '70000',
      CHAT_T_NAME: 'ABC',
      CHAT_T_ON: 'maybe',
      CHAT_T_MODE: 'c',
      CHAT_T_BROKERS: 'nohostport',
      CHAT_T_SECRET: 'S3CRET!',
    });
  } catch (err) {
    caught = err;
  }
  assert.ok(isChatError(caught, 'CONFIG_ERR_INVALID'));
  const problems = caught.details.problems as { env: string; value: string }[];
  assert.deepEqual(
    problems.map((p) => p.env),
    ['CHAT_T_PORT', 'CHAT_T_NAME', 'CHAT_T_ON', 'CHAT_T_MODE', 'CHAT_T_BROKERS', 'CHAT_T_SECRET'],
  );
  assert.equal(problems.at(-1)?.value, '[redacted]');
  assert.ok(!caught.message.includes('S3CRET'));
});

test('integers reject fractions, garbage and unsafe values', () => {
  for (const bad of ['1.5', '0x10', '12abc', '9007199254740993', '-1']) {
    assert.throws(
      () => loadConfig(schema, { CHAT_T_PORT: bad }),
      (e) => isChatError(e, 'CONFIG_ERR_INVALID'),
      bad,
    );
  }
});

test('unknown CHAT_* variables are warned about with the closest known name', () => {
  const warnings: Record<string, unknown>[] = [];
  loadConfig(
    nodeConfigSchema,
    { CHAT_NODE_PROT: '1', CHAT_TOTALLY_ELSE: 'x', PATH: '/bin', CHAT_NODE_PORT: '0' },
    { knownEnv: KNOWN_ENV, warn: (_msg, details) => warnings.push(details) },
  );
  assert.deepEqual(warnings, [
    { env: 'CHAT_NODE_PROT', didYouMean: 'CHAT_NODE_PORT' },
    { env: 'CHAT_TOTALLY_ELSE' },
  ]);
});

test('the tools’ variables (chatctl, the demo, the terminal client) are known: an operator’s shell may export them', () => {
  const warnings: Record<string, unknown>[] = [];
  loadConfig(
    nodeConfigSchema,
    { CHAT_ROUTER_ADMIN_URL: 'http://r:8090', CHAT_DEMO_PAGE_PORT: '0', CHAT_URL: 'ws://x', CHAT_TOKEN: 't' },
    { knownEnv: KNOWN_ENV, warn: (_msg, details) => warnings.push(details) },
  );
  assert.deepEqual(warnings, []);
});

test('field env names must follow CHAT_<COMPONENT>_<THING>', () => {
  assert.throws(() => str({ env: 'NODE_PORT', default: '', doc: 'x' }), /CHAT_/);
});
