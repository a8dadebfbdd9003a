import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** Where the quick start keeps its development HS256 secret (git-ignored). */
export const DEV_SECRET_FILE = join(
  dirname(fileURLToPath(import.meta.url)),
  '..',
  '..',
  '.cache',
  'dev-secret',
);

/** The development secret, created on first use. Never use it outside a development machine. */
export function devSecret(create = true): string | undefined {
  if (existsSync(DEV_SECRET_FILE)) return readFileSync(DEV_SECRET_FILE, 'utf8').trim();
  if (!create) return undefined;
  mkdirSync(dirname(DEV_SECRET_FILE), { recursive: true });
  const secret = randomBytes(32).toString('base64url');
  writeFileSync(DEV_SECRET_FILE, secret, { mode: 0o600 });
  return secret;
}
