// `npm run token -- <userId> [--ttl SECONDS] [--affinity KEY]`: prints a development token (HS256) for the
// quick start, signed with CHAT_AUTH_HS256_SECRET or else the demo's development secret (.cache/dev-secret).
import { parseArgs } from 'node:util';
import { mintToken, UserId } from '@chat/shared';
import { devSecret } from './dev-secret.js';

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: { ttl: { type: 'string', default: '43200' }, affinity: { type: 'string' } },
});
const sub = positionals[0] ?? '';
if (!UserId.safeParse(sub).success) {
  console.error('usage: npm run token -- <userId> [--ttl SECONDS] [--affinity KEY]');
  process.exit(64);
}
const secret = process.env.CHAT_AUTH_HS256_SECRET || devSecret();
if (!secret) process.exit(1);
console.log(
  await mintToken({
    secret,
    sub,
    ttlSec: Number(values.ttl),
    ...(values.affinity ? { affinity: values.affinity } : {}),
    ...(process.env.CHAT_AUTH_ISSUER ? { issuer: process.env.CHAT_AUTH_ISSUER } : {}),
    ...(process.env.CHAT_AUTH_AUDIENCE ? { audience: process.env.CHAT_AUTH_AUDIENCE } : {}),
  }),
);
