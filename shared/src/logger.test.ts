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
  error('Connection', 'Connection error: connect ECONNREFUSED 127.0.0.1:9092');
  error('Consumer', 'Crash: KafkaJSNonRetriableError: Topic authorization failed');
  assert.deepEqual(
    lines.map((l) => l.level),
    ['debug', 'debug', 'debug', 'warn', 'warn', 'warn', 'warn', 'warn', 'error', 'error', 'error'],
  );
  assert.equal(lines[0]?.error, 'This server does not host this topic-partition');
});
