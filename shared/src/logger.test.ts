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
