// `npm run token -- <userId> [--ttl SECONDS] [--affinity KEY]`: prints a development token (HS256) for the
// quick start, signed with CHAT_AUTH_HS256_SECRET or else the demo's development secret (.cache/dev-secret),
// with the issuer and audience servers require (CHAT_AUTH_ISSUER, CHAT_AUTH_AUDIENCE, default `chat`).
import { parseArgs } from 'node:util';
import { commonConfigSchema, mintToken, UserId } from '@chat/shared';
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
const ttlSec = Number(values.ttl);
if (!Number.isSafeInteger(ttlSec) || ttlSec <= 0) {
  console.error('--ttl takes a whole number of seconds');
  process.exit(64);
}
// Servers refuse tokens that live longer than CHAT_AUTH_MAX_LIFETIME_SEC (default 24 h).
const maxLifetime = Number(
  process.env.CHAT_AUTH_MAX_LIFETIME_SEC || commonConfigSchema.authMaxLifetimeSec.default,
);
if (ttlSec > maxLifetime) {
  console.error(
    `warning: --ttl ${ttlSec} exceeds CHAT_AUTH_MAX_LIFETIME_SEC (${maxLifetime}): servers refuse it`,
  );
}
const secret = process.env.CHAT_AUTH_HS256_SECRET || devSecret();
if (!secret) process.exit(1);
console.log(
  await mintToken({
    secret,
    sub,
    ttlSec,
    ...(values.affinity ? { affinity: values.affinity } : {}),
    ...(process.env.CHAT_AUTH_ISSUER ? { issuer: process.env.CHAT_AUTH_ISSUER } : {}),
    ...(process.env.CHAT_AUTH_AUDIENCE ? { audience: process.env.CHAT_AUTH_AUDIENCE } : {}),
  }),
);
