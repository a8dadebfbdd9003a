// `pnpm docs:gen` (second half): docs generated from the services' own registries.
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { repoRoot } from '../paths.js';
import { renderMetricsDocs } from './metrics-docs.js';

writeFileSync(join(repoRoot, 'docs/metrics.md'), renderMetricsDocs());
console.log('wrote docs/metrics.md');
