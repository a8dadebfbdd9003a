import { spawn, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { createWriteStream, existsSync } from 'node:fs';
import { mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { ChatError } from '@chat/shared';
import { repoRoot } from '../paths.js';

/** The pom whose runtime classpath is Apache Kafka's broker. */
export const KAFKA_POM = join(repoRoot, 'deploy', 'kafka', 'pom.xml');

/** Maven fetched from Maven Central when `mvn` is not installed (the Maven Wrapper does the same). */
const MAVEN_VERSION = '3.9.11';
const CENTRAL = 'https://repo.maven.apache.org/maven2';

function onPath(cmd: string): boolean {
  return spawnSync(cmd, ['--version'], { stdio: 'ignore' }).status === 0;
}

/** `mvn` from PATH (or $MVN), else a Maven distribution downloaded once into ~/.m2/wrapper. */
export async function findMaven(log: (msg: string) => void): Promise<string> {
  if (process.env.MVN) return process.env.MVN;
  if (onPath('mvn')) return 'mvn';
  const home = join(homedir(), '.m2', 'wrapper', `apache-maven-${MAVEN_VERSION}`);
  const bin = join(home, 'bin', 'mvn');
  if (existsSync(bin)) return bin;

  const name = `apache-maven-${MAVEN_VERSION}-bin.tar.gz`;
  const url = `${CENTRAL}/org/apache/maven/apache-maven/${MAVEN_VERSION}/${name}`;
  log(`mvn not found: downloading Maven ${MAVEN_VERSION} from Maven Central`);
  const parent = join(homedir(), '.m2', 'wrapper');
  await mkdir(parent, { recursive: true });
  const archive = join(parent, `${name}.part`);
  const response = await fetch(url);
  if (!response.ok || !response.body) {
    throw new ChatError('KAFKA_ERR_START_FAILED', `could not download Maven: HTTP ${response.status}`, {
      url,
    });
  }
  await pipeline(Readable.fromWeb(response.body), createWriteStream(archive));
  const expected = (await (await fetch(`${url}.sha512`)).text()).trim().split(/\s+/)[0];
  const actual = createHash('sha512')
    .update(await readFile(archive))
    .digest('hex');
  if (actual !== expected) {
    await rm(archive, { force: true });
    throw new ChatError('KAFKA_ERR_START_FAILED', 'downloaded Maven failed its sha512 check', { url });
  }
  const untar = spawnSync('tar', ['-xzf', archive, '-C', parent], { stdio: 'inherit' });
  await rm(archive, { force: true });
  if (untar.status !== 0)
    throw new ChatError('KAFKA_ERR_START_FAILED', 'could not unpack Maven', { archive });
  return bin;
}

/**
 * Apache Kafka's broker runtime classpath, resolved by Maven from deploy/kafka/pom.xml. Jars live in the
 * local Maven repository (~/.m2); the resolved classpath is cached in .cache/kafka keyed by the pom's
 * digest, so a warm call costs one file read and a stat per jar.
 */
export async function kafkaClasspath(log: (msg: string) => void = () => {}): Promise<string> {
  const pom = await readFile(KAFKA_POM);
  const digest = createHash('sha256').update(pom).digest('hex').slice(0, 16);
  // In the user's cache, not the clone: a fresh clone (CI) reuses it too.
  const cacheDir = join(process.env.XDG_CACHE_HOME ?? join(homedir(), '.cache'), 'chat-cluster', 'kafka');
  const cacheFile = join(cacheDir, `classpath-${digest}.txt`);
  if (existsSync(cacheFile)) {
    const cached = (await readFile(cacheFile, 'utf8')).trim();
    if (cached.split(':').every((jar) => existsSync(jar))) return cached;
  }
  await mkdir(cacheDir, { recursive: true });
  const mvn = await findMaven(log);
  log('resolving the Kafka broker classpath with Maven (first run downloads the jars)');
  const tmp = `${cacheFile}.${process.pid}.tmp`;
  const output: Buffer[] = [];
  const code = await new Promise<number | null>((resolve, reject) => {
    const child = spawn(
      mvn,
      ['-B', '-q', '-f', KAFKA_POM, 'dependency:build-classpath', `-Dmdep.outputFile=${tmp}`],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    child.stdout.on('data', (b: Buffer) => output.push(b));
    child.stderr.on('data', (b: Buffer) => output.push(b));
    child.on('error', reject);
    child.on('close', resolve);
  });
  if (code !== 0 || !existsSync(tmp)) {
    throw new ChatError('KAFKA_ERR_START_FAILED', 'Maven could not resolve the Kafka classpath', {
      exitCode: code,
      output: Buffer.concat(output).toString('utf8').slice(-4000),
    });
  }
  await rename(tmp, cacheFile);
  return (await readFile(cacheFile, 'utf8')).trim();
}

/** Kafka's version, read from the pom (for logs and the closing note). */
export async function kafkaVersion(): Promise<string> {
  const pom = await readFile(KAFKA_POM, 'utf8');
  return /<kafka\.version>([^<]+)<\/kafka\.version>/.exec(pom)?.[1] ?? 'unknown';
}

/** Writes `text` to `path` atomically. */
export async function writeFileAtomic(path: string, text: string): Promise<void> {
  await writeFile(`${path}.tmp`, text);
  await rename(`${path}.tmp`, path);
}
