// `pnpm docs:gen` (last step): writes the Grafana dashboard from typed code (chat-cluster.ts).
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { repoRoot } from '../../paths.js';
import { DASHBOARD_PATH, renderDashboard } from './chat-cluster.js';

await writeFile(join(repoRoot, DASHBOARD_PATH), await renderDashboard());
console.log(`wrote ${DASHBOARD_PATH}`);
