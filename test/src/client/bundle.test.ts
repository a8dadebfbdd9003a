// What a browser loads: client/src/index.ts bundled with esbuild (the client package's own, pinned) for
// the browser, minified. It must build without any Node.js built-in and without @chat/shared's runtime
// (zod, pino, jose, kafkajs): only types come from there. Its size, raw and gzipped, is printed for the
// docs; the bundle is then loaded and used against a local server, so it is not merely built.
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { pathToFileURL } from 'node:url';
import { test } from 'node:test';
import { gzipSync } from 'node:zlib';
import type * as Sdk from '@chat/client';
import { repoRoot } from '../paths.js';
import { startFakeServer } from './fake-server.js';

/** The slice of esbuild's API this test uses (esbuild is the client package's dependency, not test's). */
interface EsbuildResult {
  outputFiles: { text: string }[];
  metafile: { inputs: Record<string, unknown> };
  warnings: unknown[];
}
type Build = (options: Record<string, unknown>) => Promise<EsbuildResult>;

test('the browser bundle: no Node.js built-in, no @chat/shared runtime; its size; it works', async (t) => {
  const esbuild = createRequire(join(repoRoot, 'client', 'package.json'))('esbuild') as {
    build: Build;
    version: string;
  };
  const result = await esbuild.build({
    entryPoints: [join(repoRoot, 'client', 'src', 'index.ts')],
    bundle: true,
    platform: 'browser',
    format: 'esm',
    target: 'es2022',
    minify: true,
    write: false,
    metafile: true,
    logLevel: 'silent',
  });
  assert.deepEqual(result.warnings, []);
  const inputs = Object.keys(result.metafile.inputs).map((p) => relative(repoRoot, join(repoRoot, p)));
  assert.ok(inputs.length > 0);
  for (const input of inputs)
    assert.match(input, /^client\/src\/[a-z-]+\.ts$/, `only the SDK's own modules: ${input}`);
  const code = result.outputFiles[0]?.text ?? '';
  assert.doesNotMatch(code, /\bnode:|require\(|\bprocess\.|\bBuffer\b/, 'nothing Node.js-only in the bundle');
  const gzip = gzipSync(code, { level: 9 }).length;
  t.diagnostic(
    `@chat/client browser bundle (esbuild ${esbuild.version}, minified ESM): ${code.length} bytes, ${gzip} bytes gzipped; ${inputs.length} modules`,
  );

  // The bundle itself, loaded as a browser would load a module, talks to a server.
  const dir = await mkdtemp(join(tmpdir(), 'chat-client-bundle-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const file = join(dir, 'chat-client.mjs');
  await writeFile(file, code);
  const sdk = (await import(pathToFileURL(file).href)) as typeof Sdk;
  const server = await startFakeServer(t, (c) =>
    c.ws.on('message', (data: Buffer) => {
      const f = JSON.parse(data.toString('utf8')) as Record<string, unknown>;
      c.send({ type: 'ack', cid: f.cid, id: 'm1', status: 'delivered' });
    }),
  );
  const client = sdk.connect({ url: server.url, userId: 'bundled' });
  t.after(() => client.close());
  assert.equal((await client.send('bob', 'from the bundle')).status, 'delivered');
  await assert.rejects(
    client.send('bob', 'x'.repeat(sdk.MAX_BODY_CHARS + 1)),
    (e: Error) => e instanceof sdk.ChatError,
  );
});
