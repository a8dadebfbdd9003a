// `npm start`: a whole chat cluster in one process, for trying the project: one router in front of three
// chat nodes. Without CHAT_KAFKA_BROKERS the nodes share the in-process bus and the router uses a static
// member list; with it, the nodes use Kafka and the router reads their heartbeats from Kafka.
import {
  createLogger,
  directoryAuthFromConfig,
  kafkaConnectionOptions,
  mintToken,
  describeListenError,
  exitOnSignal,
  loadConfig,
  loadServiceConfig,
  nodeConfigSchema,
  orExitOnConfigError,
  routerConfigSchema,
  type Logger,
} from '@chat/shared';
import {
  createChatNode,
  KafkaBus,
  MemoryBusHub,
  newEpoch,
  NodeMetrics,
  type ChatBus,
  type ChatNode,
} from '@chat/node';
import { createRouter, StaticMembership } from '@chat/router';
import { DEV_SECRET_FILE, devSecret } from './dev-secret.js';
import { startPageServer } from './page-server.js';

const NODES = ['node-1', 'node-2', 'node-3'];
const env: Record<string, string | undefined> = { CHAT_LOG_LEVEL: 'warn', ...process.env };
// Authentication stays on: without key material of its own, the demo signs with a development secret.
const devAuth =
  env.CHAT_AUTH_MODE !== 'off' &&
  !env.CHAT_AUTH_HS256_SECRET &&
  !env.CHAT_AUTH_JWKS_FILE &&
  !env.CHAT_AUTH_JWKS_URL;
if (devAuth) env.CHAT_AUTH_HS256_SECRET = devSecret();
// On Kafka, membership records are signed: without a cluster secret of its own, the demo derives one from
// the development secret (never use it outside a development machine).
if (env.CHAT_KAFKA_BROKERS && !env.CHAT_CLUSTER_SECRET && !env.CHAT_INTERNAL_TOKEN)
  env.CHAT_CLUSTER_SECRET = `demo-cluster:${devSecret() ?? ''}`;

const { routerConfig, nodeBase } = orExitOnConfigError(() => ({
  routerConfig: loadServiceConfig(routerConfigSchema, env),
  // The demo picks node ids and ports itself; everything else (bus, limits, timeouts) comes from the env.
  nodeBase: loadConfig(nodeConfigSchema, { ...env, CHAT_NODE_ID: undefined, CHAT_NODE_PORT: '0' }),
}));
// The nodes' Kafka credentials and membership signing, as node/src/main.ts reads them (the router's own
// come from its configuration: createRouter's membershipFromConfig).
const connection = orExitOnConfigError(() =>
  nodeBase.kafkaBrokers.length > 0 ? kafkaConnectionOptions(nodeBase) : {},
);
const recordAuth = orExitOnConfigError(() => directoryAuthFromConfig(nodeBase));

const logger = createLogger({ name: 'demo', level: routerConfig.logLevel });
const kafka = routerConfig.kafkaBrokers.length > 0;
const hub = new MemoryBusHub();

function busFor(nodeId: string, epoch: string, metrics: NodeMetrics, log: Logger): ChatBus {
  if (!kafka) return hub.connect(nodeId);
  return new KafkaBus({
    brokers: nodeBase.kafkaBrokers,
    connection,
    topicPrefix: nodeBase.kafkaTopicPrefix,
    nodeId,
    epoch,
    shards: nodeBase.clusterShards,
    batchMax: nodeBase.busBatchMax,
    publishTimeoutMs: nodeBase.busPublishTimeoutMs,
    startTimeoutMs: nodeBase.busStartTimeoutMs,
    fetchMaxWaitMs: nodeBase.busFetchMaxWaitMs,
    logger: log,
    metrics,
    recordAuth,
  });
}

const nodes: ChatNode[] = [];
/** The browser chat page's port (demo only; 0 picks a free one). */
const pagePort = Number(env.CHAT_DEMO_PAGE_PORT ?? '8000');
if (!Number.isInteger(pagePort) || pagePort < 0 || pagePort > 65_535) {
  console.error('demo: CHAT_DEMO_PAGE_PORT must be a port number (0-65535)');
  process.exit(78);
}

/** Ends a failed start: a taken port is one line naming the variable that moves it, anything else a stack. */
async function startFailed(err: unknown): Promise<never> {
  const line = describeListenError(err, [
    { env: 'CHAT_ROUTER_PORT', host: routerConfig.host, port: routerConfig.port },
    { env: 'CHAT_ROUTER_ADMIN_PORT', host: routerConfig.adminHost, port: routerConfig.adminPort },
    { env: 'CHAT_DEMO_PAGE_PORT', host: '127.0.0.1', port: pagePort },
  ]);
  console.error(line ? `demo: ${line}` : err);
  await Promise.all(nodes.map((n) => n.stop()));
  process.exit(1);
}

const urls: { id: string; url: string }[] = [];
for (const nodeId of NODES) {
  const log = logger.child({ nodeId });
  const epoch = newEpoch();
  const metrics = new NodeMetrics({ defaultMetrics: false });
  const node = createChatNode(
    { ...nodeBase, nodeId },
    { logger: log, bus: busFor(nodeId, epoch, metrics, log), epoch, metrics },
  );
  nodes.push(node);
  const address = await node.start().catch(startFailed);
  urls.push({ id: nodeId, url: `http://127.0.0.1:${address.port}` });
}

// Kafka: the router reads the members topic as a standalone router does (signed heartbeats, credentials,
// its metrics); in-process: the three nodes as a static list.
const router = createRouter(routerConfig, {
  logger,
  ...(kafka
    ? {}
    : {
        membership: new StaticMembership(
          urls.map(({ id, url }) => ({ id, url, weight: 1, state: 'active' as const })),
        ),
      }),
});
const { port, adminPort } = await router.start().catch(startFailed);
// Wait until the router has probed the nodes, so the first client is not turned away.
while (router.members.ring.size < NODES.length) await new Promise((r) => setTimeout(r, 20));

// The browser chat page, on loopback: it mints development tokens for anyone who asks.
const secret = env.CHAT_AUTH_HS256_SECRET;
const publicHost = ['0.0.0.0', '::', ''].includes(routerConfig.host) ? '127.0.0.1' : routerConfig.host;
const page = await startPageServer({
  port: pagePort,
  routerUrl: `ws://${publicHost.includes(':') ? `[${publicHost}]` : publicHost}:${port}`,
  mint:
    env.CHAT_AUTH_MODE === 'off'
      ? () => Promise.resolve(null)
      : secret
        ? (sub, ttlSec) =>
            mintToken({
              secret,
              sub,
              ttlSec,
              ...(env.CHAT_AUTH_ISSUER ? { issuer: env.CHAT_AUTH_ISSUER } : {}),
              ...(env.CHAT_AUTH_AUDIENCE ? { audience: env.CHAT_AUTH_AUDIENCE } : {}),
            })
        : undefined,
  // Who is connected through this router: placed by their user id (the page's tokens carry no affinity).
  online: () => router.connections.all().map((c) => c.key),
}).catch(startFailed);

// Handlers before the ready line: whoever reads it may signal at once.
exitOnSignal(async () => {
  await page.close();
  await router.stop(500);
  const clean = await Promise.all(nodes.map((n) => n.stop()));
  return clean.every(Boolean) ? 0 : 1;
});
const endpoint = `ws://${routerConfig.host}:${port}/chat/{userId}`;
console.log(
  `Chat cluster ready (${kafka ? 'Kafka bus' : 'in-process bus, no Kafka'}): one router, ${NODES.length} nodes.`,
);
console.log(`  Chat page: ${page.url}  (open it in two browser tabs, sign in as two users)`);
console.log(`  Endpoint:  ${endpoint}`);
console.log(`  Admin API: http://${routerConfig.adminHost}:${adminPort}/members`);
console.log(`  Nodes:     ${urls.map((u) => `${u.id} ${u.url}`).join(', ')}`);
if (devAuth)
  console.log(
    `  Auth:      JWT (HS256), development secret in ${DEV_SECRET_FILE}; npm run --silent token -- alice`,
  );
else if (env.CHAT_AUTH_MODE === 'off') console.log('  Auth:      OFF (CHAT_AUTH_MODE=off)');
console.log(
  `Chat from two more terminals:  npm run chat alice  /  npm run chat bob   (then type: @bob hello)`,
);
process.send?.({ type: 'ready', port, adminPort, pageUrl: page.url });
