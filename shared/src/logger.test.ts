import assert from 'node:assert/strict';
import { test } from 'node:test';
import { createLogger, kafkaLogCreator } from './logger.js';

function capture() {
  const lines: Record<string, unknown>[] = [];
  return {
    lines,
    destination: { write: (s: string) => void lines.push(JSON.parse(s) as Record<string, unknown>) },
  };
}

test('log lines are JSON with name, level label and redacted secrets', () => {
  const { lines, destination } = capture();
  const log = createLogger({ name: 'node', level: 'info', destination, base: { nodeId: 'n1' } });
  log
    .child({ subsystem: 'ws' })
    .info({ token: 'abc', headers: { authorization: 'Bearer x' }, user: 'u' }, 'hello');
  log.debug('hidden');
  assert.equal(lines.length, 1);
  const line = lines[0];
  assert.equal(line?.name, 'node');
  assert.equal(line?.level, 'info');
  assert.equal(line?.nodeId, 'n1');
  assert.equal(line?.subsystem, 'ws');
  assert.equal(line?.token, '[redacted]');
  assert.deepEqual(line?.headers, { authorization: '[redacted]' });
  assert.equal(line?.user, 'u');
});

test('kafkajs logs become structured lines at the mapped level', () => {
  const { lines, destination } = capture();
  const log = createLogger({ name: 't', level: 'debug', destination });
  const entry = kafkaLogCreator(log)();
  entry({
    namespace: 'Connection',
    level: 1,
    label: 'ERROR',
    log: { message: 'boom', broker: 'b:1', timestamp: 'x' },
  });
  entry({ namespace: 'Consumer', level: 4, label: 'INFO', log: { message: 'joined' } });
  assert.deepEqual(
    lines.map((l) => [l.level, l.msg, l.namespace, l.broker]),
    [
      ['error', 'boom', 'Connection', 'b:1'],
      ['debug', 'joined', 'Consumer', undefined],
    ],
  );
});

test('a kafkajs warning about a setting we chose on purpose is logged at debug; other warnings stay warnings', () => {
  const { lines, destination } = capture();
  const log = createLogger({ name: 't', level: 'debug', destination });
  const entry = kafkaLogCreator(log)();
  const warn = (message: string) =>
    entry({ namespace: 'Producer', level: 2, label: 'WARN', log: { message } });
  warn('Limiting retries for the idempotent producer may invalidate EoS guarantees');
  warn('something else');
  assert.deepEqual(
    lines.map((l) => [l.level, l.msg]),
    [
      ['debug', 'Limiting retries for the idempotent producer may invalidate EoS guarantees'],
      ['warn', 'something else'],
    ],
  );
});

test('kafkajs errors that are expected and retried are logged below error; real errors stay errors', () => {
  const { lines, destination } = capture();
  const log = createLogger({ name: 't', level: 'debug', destination });
  const entry = kafkaLogCreator(log)();
  const error = (namespace: string, message: string, fields: Record<string, unknown> = {}) =>
    entry({ namespace, level: 1, label: 'ERROR', log: { message, ...fields } });
  // Lines a node and a router print while starting against a freshly started broker (kafkajs 2.2.4).
  error('Connection', 'Response Metadata(key: 3, version: 6)', {
    error: 'This server does not host this topic-partition',
  });
  error('Connection', 'Response InitProducerId(key: 22, version: 1)', {
    error: "The coordinator is loading and hence can't process requests for this group",
  });
  error('Connection', 'Response GroupCoordinator(key: 10, version: 2)', {
    error: 'The group coordinator is not available',
  });
  error('Consumer', 'Crash: KafkaJSProtocolError: The group coordinator is not available', { groupId: 'g' });
  error('Consumer', 'Restarting the consumer in 200ms', { groupId: 'g' });
  error(
    'Producer',
    'Failed to send messages: There is no leader for this topic-partition as we are in the middle of a leadership election',
  );
  error('Runner', 'The coordinator is not aware of this member, re-joining the group', { groupId: 'g' });
  error('Connection', 'Response CreateTopics(key: 19, version: 3)', { error: 'Topic creation errors' });
  // Real trouble.
  error('Connection', 'Response Produce(key: 0, version: 7)', {
    error: 'Disk error when trying to access log file on the disk',
  });
  error('Consumer', 'Crash: KafkaJSNonRetriableError: Topic authorization failed');
  error('Consumer', 'Crash: KafkaJSNumberOfRetriesExceeded: Topic authorization failed');
  assert.deepEqual(
    lines.map((l) => l.level),
    ['debug', 'debug', 'debug', 'warn', 'warn', 'warn', 'warn', 'warn', 'error', 'error', 'error'],
  );
  assert.equal(lines[0]?.error, 'This server does not host this topic-partition');
});

/** Lines kafkajs 2.2.4 logged at error (level 1) while a broker was stopped and restarted (captured here). */
const BROKER_AWAY_LINES: [namespace: string, message: string, fields?: Record<string, unknown>][] = [
  ['Connection', 'Connection error: connect ECONNREFUSED 127.0.0.1:39017', { stack: 'Error: ...' }],
  [
    'BrokerPool',
    'Failed to connect to seed broker, trying another broker from the list: Connection error: connect ECONNREFUSED 127.0.0.1:39017',
  ],
  ['Producer', 'Failed to send messages: Connection error: connect ECONNREFUSED 127.0.0.1:39017'],
  [
    'Consumer',
    'Crash: KafkaJSNumberOfRetriesExceeded: Connection error: connect ECONNREFUSED 127.0.0.1:39017',
  ],
  ['Consumer', 'Crash: KafkaJSNoBrokerAvailableError: No broker available'],
  [
    'Consumer',
    "Crash: KafkaJSProtocolError: The coordinator is loading and hence can't process requests for this group",
  ],
  ['Connection', 'Connection error: read ECONNRESET'],
  ['Consumer', 'Crash: KafkaJSConnectionClosedError: Closed connection'],
  ['Producer', 'Failed to send messages: Request Produce(key: 0, version: 7) timed out'],
  ['Connection', 'Connection timeout'],
  ['Producer', 'Failed to send messages: The broker is not available'],
];

test('while the broker is away kafkajs errors become warnings, one line per kind per window with a count', (t) => {
  t.mock.timers.enable({ apis: ['setTimeout'] });
  const { lines, destination } = capture();
  const log = createLogger({ name: 't', level: 'info', destination });
  const entry = kafkaLogCreator(log, { windowMs: 10_000 })();
  const emit = () => {
    for (const [namespace, message, fields] of BROKER_AWAY_LINES)
      entry({ namespace, level: 1, label: 'ERROR', log: { message, ...fields } });
  };
  for (let i = 0; i < 20; i++) emit(); // 220 error lines, as a broker restart gives
  assert.equal(lines.filter((l) => l.level === 'error').length, 0);
  const kinds = lines.map((l) => l.kind);
  assert.deepEqual(kinds, [
    'connection refused',
    'broker not available',
    'coordinator not available',
    'connection reset',
    'connection closed',
    'request timeout',
    'connection timeout',
  ]);
  assert.ok(lines.every((l) => l.level === 'warn' && l.stack === undefined));
  // The window ends: one line per kind says how many were suppressed.
  t.mock.timers.tick(10_000);
  const summaries = lines.slice(kinds.length);
  const refused = summaries.find((l) => l.kind === 'connection refused');
  assert.equal(refused?.suppressed, 20 * 4 - 1);
  assert.equal(refused?.level, 'warn');
  assert.equal(summaries.find((l) => l.kind === 'broker not available')?.suppressed, 20 * 2 - 1);
  assert.equal(summaries.length, kinds.length);
  // A new window starts with a line of its own; a kind seen once in a window has no summary.
  entry({ namespace: 'Connection', level: 1, label: 'ERROR', log: { message: 'Connection timeout' } });
  assert.equal(lines.at(-1)?.msg, 'Connection timeout');
  const before = lines.length;
  t.mock.timers.tick(10_000);
  assert.equal(lines.length, before);
});

test('real errors are never rate-limited or lowered, even among broker-away ones', (t) => {
  t.mock.timers.enable({ apis: ['setTimeout'] });
  const { lines, destination } = capture();
  const log = createLogger({ name: 't', level: 'info', destination });
  const entry = kafkaLogCreator(log)();
  for (let i = 0; i < 3; i++) {
    entry({
      namespace: 'Connection',
      level: 1,
      label: 'ERROR',
      log: { message: 'Connection error: connect ECONNREFUSED 1.2.3.4:9' },
    });
    entry({
      namespace: 'Connection',
      level: 1,
      label: 'ERROR',
      log: {
        message: 'Response Produce(key: 0, version: 7)',
        error: 'The request included message batch larger than the configured segment size on the server',
      },
    });
  }
  assert.deepEqual(
    lines.map((l) => l.level),
    ['warn', 'error', 'error', 'error'],
  );
  t.mock.timers.tick(10_000);
});
