import { fileURLToPath } from 'node:url';

/** The repository root (this file is test/src/paths.ts, or test/dist/paths.js when built). */
export const repoRoot = fileURLToPath(new URL('../../', import.meta.url));
