// The demo's browser chat page (demo/web): a small HTTP server on loopback that serves the page, its
// script (bundled from TypeScript with esbuild when the server starts), and two endpoints that exist only
// in the demo: a development token for any user id, and who is online through the demo's router.
import { readFile } from 'node:fs/promises';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';
import { UserId } from '@chat/shared';

const WEB_DIR = fileURLToPath(new URL('../web/', import.meta.url));

/** Token lifetimes the page may ask for (`?ttl=` on the page; short ones show the in-band refresh). */
export const PAGE_TOKEN_TTL = { min: 5, max: 3600, default: 600 } as const;
/** The most users `/demo/online` lists. */
const ONLINE_LIMIT = 500;
/** Largest token request body. */
const MAX_BODY_BYTES = 1024;

export interface PageServerOptions {
  /** The router's public WebSocket endpoint the page connects to, e.g. `ws://127.0.0.1:8080`. */
  readonly routerUrl: string;
  /**
   * Mints a token for a user (null: the cluster runs without authentication); undefined when the demo
   * cannot mint (its nodes verify tokens against a JWKS).
   */
  readonly mint: ((userId: string, ttlSec: number) => Promise<string | null>) | undefined;
  /** The user ids connected now. */
  readonly online: () => Iterable<string>;
  readonly port: number;
}

export interface PageServer {
  readonly url: string;
  /** Bytes of the page's script as served (minified). */
  readonly scriptBytes: number;
  close(): Promise<void>;
}

/** Bundles the page's script: the SDK and the page, minified, for browsers. */
export async function bundlePage(): Promise<string> {
  const result = await build({
    entryPoints: [`${WEB_DIR}src/app.ts`],
    bundle: true,
    format: 'esm',
    platform: 'browser',
    target: 'es2022',
    minify: true,
    write: false,
    // The workspace packages' TypeScript sources (their package.json `source` condition).
    conditions: ['source'],
    logLevel: 'silent',
  });
  const [file] = result.outputFiles;
  if (!file) throw new Error('esbuild produced no output');
  return file.text;
}

/** Starts the page server on 127.0.0.1 (never another interface: it hands out tokens). */
export async function startPageServer(o: PageServerOptions): Promise<PageServer> {
  const [script, html, css] = await Promise.all([
    bundlePage(),
    readFile(`${WEB_DIR}index.html`, 'utf8'),
    readFile(`${WEB_DIR}style.css`, 'utf8'),
  ]);
  const security = {
    'x-content-type-options': 'nosniff',
    'referrer-policy': 'no-referrer',
    'content-security-policy': `default-src 'self'; connect-src 'self' ${new URL(o.routerUrl).origin}; frame-ancestors 'none'`,
  };
  const send = (res: ServerResponse, status: number, type: string, body: string): void =>
    void res.writeHead(status, { 'content-type': type, 'cache-control': 'no-store', ...security }).end(body);
  const json = (res: ServerResponse, status: number, body: unknown): void =>
    send(res, status, 'application/json', JSON.stringify(body));

  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const path = new URL(req.url ?? '/', 'http://page').pathname;
    const route = `${req.method ?? 'GET'} ${path}`;
    switch (route) {
      case 'GET /':
      case 'GET /index.html':
        return send(res, 200, 'text/html; charset=utf-8', html);
      case 'GET /app.js':
        return send(res, 200, 'text/javascript; charset=utf-8', script);
      case 'GET /style.css':
        return send(res, 200, 'text/css; charset=utf-8', css);
      case 'GET /demo/config':
        return json(res, 200, { routerUrl: o.routerUrl });
      case 'GET /demo/online': {
        const users = [...new Set(o.online())].sort().slice(0, ONLINE_LIMIT);
        return json(res, 200, { users });
      }
      case 'POST /demo/token':
        return token(req, res);
    }
    if (
      ['/', '/index.html', '/app.js', '/style.css', '/demo/config', '/demo/online', '/demo/token'].includes(
        path,
      )
    )
      return json(res, 405, {
        error: 'DEMO_ERR_METHOD',
        message: `${req.method ?? ''} is not allowed on ${path}`,
      });
    return json(res, 404, { error: 'DEMO_ERR_NOT_FOUND', message: `no ${path} here` });
  };

  const token = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const body = await readBody(req);
    if (body === undefined)
      return json(res, 413, { error: 'DEMO_ERR_TOO_LARGE', message: `at most ${MAX_BODY_BYTES} bytes` });
    let request: { user?: unknown; ttl?: unknown } | undefined;
    try {
      request = JSON.parse(body) as typeof request;
    } catch {
      request = undefined;
    }
    if (request === null || typeof request !== 'object')
      return json(res, 400, {
        error: 'DEMO_ERR_BAD_REQUEST',
        message: 'send {"user": "<id>", "ttl": <seconds>}',
      });
    if (!UserId.safeParse(request.user).success)
      return json(res, 400, {
        error: 'DEMO_ERR_BAD_USER',
        message: 'a user id is 1-128 characters of A-Z a-z 0-9 . _ @ -',
      });
    const ttl = request.ttl ?? PAGE_TOKEN_TTL.default;
    if (
      typeof ttl !== 'number' ||
      !Number.isInteger(ttl) ||
      ttl < PAGE_TOKEN_TTL.min ||
      ttl > PAGE_TOKEN_TTL.max
    )
      return json(res, 400, {
        error: 'DEMO_ERR_BAD_TTL',
        message: `ttl is whole seconds from ${PAGE_TOKEN_TTL.min} to ${PAGE_TOKEN_TTL.max}`,
      });
    const user = request.user as string;
    if (!o.mint)
      return json(res, 501, {
        error: 'DEMO_ERR_NO_MINT',
        message:
          'the demo verifies tokens with a JWKS and cannot mint them: sign in with a token of your own',
      });
    return json(res, 200, { token: await o.mint(user, ttl) });
  };

  const server = createServer((req, res) => {
    handle(req, res).catch(() => {
      if (!res.headersSent) json(res, 500, { error: 'DEMO_ERR_INTERNAL', message: 'see the demo log' });
      else res.destroy();
    });
  });
  server.headersTimeout = 10_000;
  server.requestTimeout = 10_000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(o.port, '127.0.0.1', () => resolve());
  });
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}/`,
    scriptBytes: Buffer.byteLength(script),
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

/** The request body as text, or undefined when it is larger than MAX_BODY_BYTES. */
async function readBody(req: IncomingMessage): Promise<string | undefined> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > MAX_BODY_BYTES) return undefined;
    chunks.push(chunk);
  }
  return Buffer.concat(chunks).toString('utf8');
}
