// The Grafana dashboard is generated from typed code (test/src/deploy/grafana/): the committed JSON must be
// exactly what the generator writes, and its layout must hold together (unique ids, no overlapping panels,
// every query on the provisioned data source). prometheus.test.ts runs every query on a live cluster.
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { repoRoot } from '../paths.js';
import { DASHBOARD_PATH, chatClusterDashboard, renderDashboard } from './grafana/chat-cluster.js';
import { prometheus } from './grafana/panels.js';

interface Panel {
  id: number;
  type: string;
  title: string;
  gridPos: { x: number; y: number; w: number; h: number };
  datasource?: { type: string; uid: string };
  targets?: { refId: string; expr: string; datasource?: { type: string; uid: string } }[];
}

test('the committed dashboard is what the generator writes (else run `pnpm docs:gen`)', async () => {
  const committed = await readFile(join(repoRoot, DASHBOARD_PATH), 'utf8');
  assert.equal(
    committed,
    await renderDashboard(),
    `${DASHBOARD_PATH} differs from test/src/deploy/grafana/: run \`pnpm docs:gen\` and commit it`,
  );
});

test('panels: unique ids, no two overlap, every query on the provisioned Prometheus', () => {
  const panels = chatClusterDashboard().panels as unknown as Panel[];
  const ids = panels.map((p) => p.id);
  assert.equal(new Set(ids).size, ids.length, `duplicate panel ids: ${ids.join(', ')}`);
  const cells = new Map<string, string>();
  for (const p of panels) {
    assert.ok(p.gridPos.x + p.gridPos.w <= 24, `${p.title} is wider than the dashboard`);
    for (let x = p.gridPos.x; x < p.gridPos.x + p.gridPos.w; x++)
      for (let y = p.gridPos.y; y < p.gridPos.y + p.gridPos.h; y++) {
        const other = cells.get(`${x},${y}`);
        assert.equal(other, undefined, `${p.title} overlaps ${other ?? ''}`);
        cells.set(`${x},${y}`, p.title);
      }
    if (p.type === 'row') continue;
    assert.deepEqual(p.datasource, prometheus, p.title);
    assert.ok((p.targets ?? []).length > 0, `${p.title} has no query`);
    for (const t of p.targets ?? []) assert.deepEqual(t.datasource, prometheus, `${p.title} ${t.refId}`);
  }
});

test('the Shards row shows shards per node, handoffs, moves and shards without an owner', () => {
  const panels = chatClusterDashboard().panels as unknown as Panel[];
  const row = panels.findIndex((p) => p.type === 'row' && p.title === 'Shards');
  assert.ok(row >= 0, 'no Shards row');
  const next = panels.findIndex((p, i) => i > row && p.type === 'row');
  const exprs = panels
    .slice(row + 1, next < 0 ? undefined : next)
    .flatMap((p) => (p.targets ?? []).map((t) => t.expr))
    .join('\n');
  for (const metric of [
    'chat_node_shards_owned',
    'chat_router_shard_count',
    'chat_router_shards_without_owner',
    'chat_router_shard_moves_in_progress',
    'chat_router_migrating_connections',
    'chat_node_shard_handovers',
    'chat_node_handoff_held_messages',
    'chat_node_handoff_total',
  ]) {
    assert.match(exprs, new RegExp(`\\b${metric}\\b`), `the Shards row does not read ${metric}`);
  }
});
