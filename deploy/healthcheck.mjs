// The image's HEALTHCHECK (deploy/Dockerfile): exit 0 when this container's service answers GET /healthz
// with 200 within 2 s, else 1. One image runs both services, so it asks the ports either would listen on
// (CHAT_ROUTER_PORT, default 8080; CHAT_NODE_PORT, default 8081) and is healthy when one of them answers.
// No shell and no curl in the image: Node.js only.
/* global fetch, AbortSignal */
const TIMEOUT_MS = 2000;
const env = process.env;
const ports = [...new Set([env.CHAT_ROUTER_PORT ?? '8080', env.CHAT_NODE_PORT ?? '8081'].map(Number))].filter(
  (p) => Number.isInteger(p) && p > 0 && p < 65536,
);

async function healthy(port) {
  try {
    const res = await fetch(`http://127.0.0.1:${port}/healthz`, { signal: AbortSignal.timeout(TIMEOUT_MS) });
    await res.body?.cancel();
    return res.status === 200;
  } catch {
    return false;
  }
}

const results = await Promise.all(ports.map(healthy));
process.exitCode = results.includes(true) ? 0 : 1;
