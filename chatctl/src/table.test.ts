import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { bar, progressFor } from './progress.js';
import { percent, renderTable } from './table.js';

describe('renderTable', () => {
  test('aligned columns, numbers right-aligned, no trailing spaces', () => {
    const text = renderTable(
      [{ header: 'NODE' }, { header: 'SHARDS', align: 'right' }, { header: 'URL' }],
      [
        ['n1', '43', 'http://a'],
        ['node-10', '7', ''],
      ],
    );
    assert.equal(text, 'NODE     SHARDS  URL\nn1           43  http://a\nnode-10       7\n');
  });

  test('percent: one decimal; a zero whole is "-"', () => {
    assert.equal(percent(1, 3), '33.3%');
    assert.equal(percent(0, 0), '-');
  });
});

describe('progress', () => {
  test('bar: proportional, clamped, a zero total is full', () => {
    assert.equal(bar(0, 10), `[${'-'.repeat(30)}] 0/10`);
    assert.equal(bar(5, 10), `[${'#'.repeat(15)}${'-'.repeat(15)}] 5/10`);
    assert.equal(bar(0, 0), `[${'#'.repeat(30)}] 0/0`);
  });

  test('a terminal gets a bar redrawn in place and a final newline', () => {
    const out: string[] = [];
    const p = progressFor({ isTTY: true, write: (s: string) => out.push(s) }, 'auto');
    p.update(1, 2, 'moving');
    p.end();
    assert.equal(out[0], `\r\u001b[2K${bar(1, 2)} moving`);
    assert.equal(out.at(-1), '\n');
  });

  test('elsewhere, plain lines: only on change and at most one per interval; none with --json', () => {
    const out: string[] = [];
    let now = 0;
    const p = progressFor({ write: (s: string) => out.push(s) }, 'auto', 1000, () => now);
    p.update(1, 4, 'x');
    p.update(2, 4, 'x'); // within the interval
    now = 1500;
    p.update(2, 4, 'x');
    now = 3000;
    p.update(2, 4, 'x'); // unchanged
    assert.deepEqual(out, ['progress: 1/4 x\n', 'progress: 2/4 x\n']);
    const none: string[] = [];
    progressFor({ isTTY: true, write: (s: string) => none.push(s) }, 'none').update(1, 2, 'x');
    assert.deepEqual(none, []);
  });
});
