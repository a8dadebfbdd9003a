import { spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { openSync, closeSync, readFileSync } from 'node:fs';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Kafka, logLevel } from 'kafkajs';
import { ChatError } from '@chat/shared';
import { freePort } from '../net.js';
import { pollUntil } from '../poll.js';
import { kafkaClasspath } from './maven.js';

export interface KafkaBrokerOptions {
  /** Working directory (config, data, broker.log). A fresh temporary one by default, removed on dispose. */
  readonly dir?: string;
  /** Broker listener port on 127.0.0.1; a free one by default. The controller gets another free port. */
  readonly port?: number;
  /** Let the broker outlive this process (the `pnpm kafka:start` CLI). */
  readonly detached?: boolean;
  /** JVM heap in MiB (default 768). */
  readonly heapMb?: number;
  /** How long to wait for the broker to answer (default 90 s: a cold JVM on a busy 2-core machine). */
  readonly startTimeoutMs?: number;
  /** Progress messages (resolving jars, formatting, started). */
  readonly log?: (msg: string) => void;
  /**
   * A SASL_PLAINTEXT listener instead of PLAINTEXT: these users (name -> password) may log in with PLAIN,
   * SCRAM-SHA-256 and SCRAM-SHA-512; clients of the harness log in as `BROKER_ADMIN`. No authorizer: any
   * user that logs in may do anything (ACLs are the operator's, docs/operations.md).
   */
  readonly sasl?: { readonly users: Readonly<Record<string, string>> };
  /**
   * TLS on the client listener (SSL, or SASL_SSL with `sasl`): `keystoreFile` holds the broker's PEM key
   * and certificate chain (for 127.0.0.1), `caFile` the CA that signed it. The broker talks to itself over
   * a plaintext listener of its own on another loopback port.
   */
  readonly tls?: { readonly keystoreFile: string; readonly caFile: string };
}

/** The user the broker itself and the harness's own clients log in as on a SASL broker. */
export const BROKER_ADMIN = { username: 'admin', password: 'admin-password-for-tests' } as const;

/** kafkajs options for the harness's clients of a broker started with `sasl` or `tls` (none otherwise). */
export function adminSasl(options: Pick<KafkaBrokerOptions, 'sasl' | 'tls'>): {
  sasl?: { mechanism: 'plain'; username: string; password: string };
  ssl?: { ca: string[] };
} {
  return {
    ...(options.sasl ? { sasl: { mechanism: 'plain' as const, ...BROKER_ADMIN } } : {}),
    ...(options.tls ? { ssl: { ca: [readFileSync(options.tls.caFile, 'utf8')] } } : {}),
  };
}

const SCRAM = ['SCRAM-SHA-256', 'SCRAM-SHA-512'] as const;

/** JAAS and listener lines for a SASL_PLAINTEXT broker listener (PLAIN users inline, SCRAM from the metadata). */
function saslProperties(users: Readonly<Record<string, string>>, listener: string): string[] {
  const all = { ...users, [BROKER_ADMIN.username]: BROKER_ADMIN.password };
  const plainUsers = Object.entries(all)
    .map(([name, password]) => `user_${name}="${password}"`)
    .join(' ');
  return [
    `sasl.enabled.mechanisms=PLAIN,${SCRAM.join(',')}`,
    'sasl.mechanism.inter.broker.protocol=PLAIN',
    `listener.name.${listener}.plain.sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required username="${BROKER_ADMIN.username}" password="${BROKER_ADMIN.password}" ${plainUsers};`,
    ...SCRAM.map(
      (m) =>
        `listener.name.${listener}.${m.toLowerCase()}.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;`,
    ),
  ];
}

/** What is needed to find a running broker again (written by the CLI to .kafka/broker.json). */
export interface KafkaBrokerState {
  readonly pid: number;
  readonly brokers: string;
  readonly dir: string;
  readonly logFile: string;
}

const JAVA = process.env.JAVA_HOME ? join(process.env.JAVA_HOME, 'bin', 'java') : 'java';

function serverProperties(
  dir: string,
  port: number,
  controllerPort: number,
  sasl?: KafkaBrokerOptions['sasl'],
  tls?: KafkaBrokerOptions['tls'] & { readonly internalPort: number },
): string {
  const listener = sasl ? (tls ? 'SASL_SSL' : 'SASL_PLAINTEXT') : tls ? 'SSL' : 'PLAINTEXT';
  // With TLS the broker reaches itself over a plaintext listener of its own (it has no client certificate).
  const internal = tls ? `,INTERNAL://127.0.0.1:${tls.internalPort}` : '';
  return [
    '# Single KRaft broker+controller on loopback, written by test/src/kafka/broker.ts.',
    'process.roles=broker,controller',
    'node.id=1',
    `controller.quorum.voters=1@127.0.0.1:${controllerPort}`,
    `listeners=${listener}://127.0.0.1:${port}${internal},CONTROLLER://127.0.0.1:${controllerPort}`,
    `advertised.listeners=${listener}://127.0.0.1:${port}${internal}`,
    'controller.listener.names=CONTROLLER',
    `inter.broker.listener.name=${tls ? 'INTERNAL' : listener}`,
    `listener.security.protocol.map=${listener}:${listener},${tls ? 'INTERNAL:PLAINTEXT,' : ''}CONTROLLER:PLAINTEXT`,
    ...(sasl ? saslProperties(sasl.users, listener.toLowerCase()) : []),
    ...(tls
      ? [
          'ssl.keystore.type=PEM',
          `ssl.keystore.location=${tls.keystoreFile}`,
          'ssl.truststore.type=PEM',
          `ssl.truststore.location=${tls.caFile}`,
        ]
      : []),
    `log.dirs=${join(dir, 'data')}`,
    // One broker: every internal topic has one replica.
    'offsets.topic.replication.factor=1',
    'offsets.topic.num.partitions=4',
    'transaction.state.log.replication.factor=1',
    'transaction.state.log.min.isr=1',
    'share.coordinator.state.topic.replication.factor=1',
    'share.coordinator.state.topic.min.isr=1',
    // Tests create their topics explicitly; a typo must fail, not create a topic.
    'auto.create.topics.enable=false',
    // Consumer groups form at once instead of waiting for more members (default 3 s).
    'group.initial.rebalance.delay.ms=0',
    // Two cores: fewer threads than the defaults.
    'num.network.threads=2',
    'num.io.threads=4',
    'background.threads=4',
    '',
  ].join('\n');
}

const LOG4J = [
  'status = warn',
  'appender.out.type = Console',
  'appender.out.name = STDOUT',
  'appender.out.layout.type = PatternLayout',
  'appender.out.layout.pattern = [%d] %p %m (%c)%n',
  'rootLogger.level = INFO',
  'rootLogger.appenderRef.out.ref = STDOUT',
  // Per-request noise.
  'logger.state.name = state.change.logger',
  'logger.state.level = WARN',
  '',
].join('\n');

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** The scheduler state of `pid` from /proc (Linux): 'T' when stopped by SIGSTOP; undefined when gone. */
function procState(pid: number): string | undefined {
  try {
    // "pid (comm) S ..." where comm may contain spaces and parentheses: the state follows the last ')'.
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[0];
  } catch {
    return undefined;
  }
}

function tail(file: string, bytes = 3000): string {
  try {
    return readFileSync(file, 'utf8').slice(-bytes);
  } catch {
    return '';
  }
}

/** Answers once the broker at `brokers` serves metadata, or throws after `timeoutMs`. */
export async function waitForKafka(
  brokers: string,
  timeoutMs: number,
  alive: () => boolean = () => true,
  options: Pick<KafkaBrokerOptions, 'sasl' | 'tls'> = {},
) {
  const kafka = new Kafka({
    clientId: 'chat-harness-probe',
    brokers: [brokers],
    ...adminSasl(options),
    connectionTimeout: 1000,
    requestTimeout: 2000,
    retry: { retries: 0 },
    logLevel: logLevel.NOTHING,
  });
  await pollUntil(
    async () => {
      if (!alive()) throw new ChatError('KAFKA_ERR_START_FAILED', 'broker process exited during start-up');
      const admin = kafka.admin();
      try {
        await admin.connect();
        const cluster = await admin.describeCluster();
        return cluster.brokers.length > 0;
      } catch (err) {
        if (err instanceof ChatError) throw err;
        return false;
      } finally {
        await admin.disconnect();
      }
    },
    { timeoutMs, intervalMs: 250, what: `Kafka at ${brokers}` },
  ).catch((err: unknown) => {
    if (err instanceof Error && err.cause instanceof ChatError) throw err.cause;
    throw err;
  });
}

/**
 * A real Apache Kafka broker (KRaft, single combined broker+controller, loopback only), launched from
 * the jars Maven resolved. Used by the test harness and by `pnpm kafka:start`.
 */
export class KafkaBroker {
  readonly dir: string;
  readonly port: number;
  readonly controllerPort: number;
  readonly logFile: string;
  readonly #options: KafkaBrokerOptions;
  readonly #ownsDir: boolean;
  #pid: number | undefined;
  #frozen = false;

  private constructor(
    dir: string,
    ownsDir: boolean,
    port: number,
    controllerPort: number,
    options: KafkaBrokerOptions,
  ) {
    this.dir = dir;
    this.#ownsDir = ownsDir;
    this.port = port;
    this.controllerPort = controllerPort;
    this.logFile = join(dir, 'broker.log');
    this.#options = options;
  }

  /** Resolves the jars, formats a new storage directory and starts the broker; resolves once it answers. */
  static async start(options: KafkaBrokerOptions = {}): Promise<KafkaBroker> {
    const log = options.log ?? (() => {});
    const classpath = await kafkaClasspath(log);
    const ownsDir = options.dir === undefined;
    const dir = options.dir ?? (await mkdtemp(join(tmpdir(), 'chat-kafka-')));
    await mkdir(dir, { recursive: true });
    const port = options.port ?? (await freePort());
    const controllerPort = await freePort();
    const broker = new KafkaBroker(dir, ownsDir, port, controllerPort, options);
    await writeFile(
      join(dir, 'server.properties'),
      serverProperties(
        dir,
        port,
        controllerPort,
        options.sasl,
        options.tls && { ...options.tls, internalPort: await freePort() },
      ),
    );
    await writeFile(join(dir, 'log4j2.properties'), LOG4J);
    broker.#format(classpath);
    await broker.#launch(classpath);
    return broker;
  }

  /** kafkajs options for a client of the harness (the admin user on a SASL broker). */
  get clientSasl(): ReturnType<typeof adminSasl> {
    return adminSasl(this.#options);
  }

  /** `host:port` of the broker listener, as CHAT_KAFKA_BROKERS takes it. */
  get brokers(): string {
    return `127.0.0.1:${this.port}`;
  }

  get pid(): number | undefined {
    return this.#pid;
  }

  get running(): boolean {
    return this.#pid !== undefined && isAlive(this.#pid);
  }

  /** True between freeze() and thaw(). */
  get frozen(): boolean {
    return this.#frozen;
  }

  state(): KafkaBrokerState {
    if (this.#pid === undefined) throw new Error('broker is not running');
    return { pid: this.#pid, brokers: this.brokers, dir: this.dir, logFile: this.logFile };
  }

  #javaArgs(classpath: string, main: string, args: string[]): string[] {
    return [
      `-Xmx${this.#options.heapMb ?? 768}m`,
      '-XX:+UseG1GC',
      '-XX:MaxGCPauseMillis=20',
      '-Djava.awt.headless=true',
      `-Dlog4j2.configurationFile=${join(this.dir, 'log4j2.properties')}`,
      '-cp',
      classpath,
      main,
      ...args,
    ];
  }

  #format(classpath: string): void {
    const clusterId = randomBytes(16).toString('base64url');
    const out = openSync(this.logFile, 'a');
    try {
      const result = spawnSync(
        JAVA,
        this.#javaArgs(classpath, 'kafka.tools.StorageTool', [
          'format',
          // One argument: a base64url id may start with '-', which would read as an option.
          `--cluster-id=${clusterId}`,
          '-c',
          join(this.dir, 'server.properties'),
          '--ignore-formatted',
          // SCRAM credentials live in the cluster metadata: the first ones are written at format time.
          ...Object.entries(this.#options.sasl?.users ?? {}).flatMap(([name, password]) =>
            SCRAM.flatMap((m) => ['--add-scram', `${m}=[name=${name},password=${password}]`]),
          ),
        ]),
        { stdio: ['ignore', out, out] },
      );
      if (result.error || result.status !== 0) {
        throw new ChatError('KAFKA_ERR_START_FAILED', 'formatting the KRaft storage failed', {
          java: JAVA,
          error: result.error?.message,
          exitCode: result.status,
          log: tail(this.logFile),
        });
      }
    } finally {
      closeSync(out);
    }
  }

  async #launch(classpath: string): Promise<void> {
    const out = openSync(this.logFile, 'a');
    const child = spawn(
      JAVA,
      this.#javaArgs(classpath, 'kafka.Kafka', [join(this.dir, 'server.properties')]),
      {
        stdio: ['ignore', out, out],
        detached: this.#options.detached ?? false,
      },
    );
    closeSync(out);
    const spawnError = new Promise<never>((_, reject) => child.once('error', reject));
    if (child.pid === undefined) await spawnError;
    this.#pid = child.pid;
    if (this.#options.detached) child.unref();
    const pid = child.pid ?? -1;
    try {
      await waitForKafka(
        this.brokers,
        this.#options.startTimeoutMs ?? 90_000,
        () => isAlive(pid),
        this.#options,
      );
    } catch (err) {
      await this.kill();
      throw new ChatError(
        'KAFKA_ERR_START_FAILED',
        'Kafka broker did not start',
        { logFile: this.logFile, log: tail(this.logFile) },
        { cause: err },
      );
    }
    this.#options.log?.(`Kafka broker ready at ${this.brokers} (pid ${pid}, log ${this.logFile})`);
  }

  /**
   * Controlled shutdown (SIGTERM), SIGKILL if it takes longer than `timeoutMs`; resolves once the JVM has
   * exited (so its port is free for restart()). Keeps the data. A frozen broker is thawed first (a
   * stopped process does not act on SIGTERM).
   */
  async stop(timeoutMs = 20_000): Promise<void> {
    const pid = this.#pid;
    if (pid === undefined) return;
    if (this.#frozen) await this.thaw();
    await stopProcess(pid, timeoutMs);
    this.#pid = undefined;
  }

  /** kill -9: the broker vanishes without a goodbye, as in a crash. Keeps the data. */
  async kill(): Promise<void> {
    const pid = this.#pid;
    if (pid === undefined) return;
    await stopProcess(pid, 0);
    this.#pid = undefined;
    this.#frozen = false;
  }

  /**
   * Starts the broker again after stop() or kill(): same listener and controller ports, same log
   * directory, so clients reconnect to the address they had and the data (topics, offsets, committed
   * group offsets) survives. Resolves once it serves metadata. No-op while it runs.
   */
  async restart(): Promise<void> {
    if (this.running) return;
    await this.#launch(await kafkaClasspath());
  }

  /**
   * Freezes the broker (SIGSTOP on the JVM): its sockets stay open but nothing answers, as in a long GC
   * pause or a hung host, unlike stop() where connections are refused. Resolves once the kernel reports
   * the process stopped. thaw() undoes it; stop(), kill() and dispose() work on a frozen broker.
   */
  async freeze(): Promise<void> {
    const pid = this.#pid;
    if (pid === undefined) throw new Error('broker is not running');
    process.kill(pid, 'SIGSTOP');
    this.#frozen = true;
    await pollUntil(() => procState(pid) === 'T' || procState(pid) === undefined, {
      timeoutMs: 5000,
      intervalMs: 10,
      what: `broker pid ${pid} to stop (SIGSTOP)`,
    });
  }

  /** Thaws a frozen broker (SIGCONT); resolves once the process runs again. No-op when not frozen. */
  async thaw(): Promise<void> {
    const pid = this.#pid;
    if (pid === undefined || !this.#frozen) return;
    process.kill(pid, 'SIGCONT');
    this.#frozen = false;
    await pollUntil(() => procState(pid) !== 'T', {
      timeoutMs: 5000,
      intervalMs: 10,
      what: `broker pid ${pid} to continue (SIGCONT)`,
    });
  }

  /** Stops the broker and removes its directory if this object created it. */
  async dispose(): Promise<void> {
    await this.stop();
    if (this.#ownsDir) await rm(this.dir, { recursive: true, force: true });
  }
}

/** Sends SIGTERM (or SIGKILL when `timeoutMs` is 0) to `pid` and waits until it is gone. */
export async function stopProcess(pid: number, timeoutMs: number): Promise<void> {
  if (!isAlive(pid)) return;
  try {
    process.kill(pid, timeoutMs > 0 ? 'SIGTERM' : 'SIGKILL');
  } catch {
    return;
  }
  try {
    await pollUntil(() => !isAlive(pid), {
      timeoutMs: Math.max(timeoutMs, 1),
      intervalMs: 100,
      what: `pid ${pid} to exit`,
    });
  } catch {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      return;
    }
    await pollUntil(() => !isAlive(pid), { timeoutMs: 10_000, intervalMs: 50, what: `pid ${pid} to die` });
  }
}
