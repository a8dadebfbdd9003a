import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

/**
 * Every metric of one chat node, on its own registry (several nodes in one test process must not
 * collide). Labels are low-cardinality enums only: never a user, room or connection id.
 */
export class NodeMetrics {
  readonly registry: Registry;
  readonly connections: Gauge;
  readonly users: Gauge;
  readonly framesIn: Counter<'type'>;
  readonly framesOut: Counter<'type'>;
  readonly deliveries: Counter<'path'>;
  readonly acks: Counter<'status'>;
  readonly busProduced: Counter<'kind'>;
  readonly busProduceErrors: Counter<'kind'>;
  readonly busConsumed: Counter<'kind'>;
  readonly busConsumeErrors: Counter<'reason'>;
  readonly busRecordsIgnored: Counter<'kind' | 'reason'>;
  readonly busRecordsUnsignedAccepted: Counter<'kind'>;
  readonly busProduceSeconds: Histogram;
  readonly ready: Gauge;
  readonly deadPeers: Counter;
  readonly migrations: Counter;
  readonly limitHits: Counter<'limit'>;
  readonly deliveryLatency: Histogram<'path'>;
  readonly consumerLag: Gauge;
  readonly shardsOwned: Gauge;
  readonly shardHandovers: Gauge<'side'>;
  readonly errorsSent: Counter<'code'>;
  readonly authFailures: Counter<'code'>;
  readonly authKeyErrors: Counter<'source'>;
  readonly handoff: Counter<'result'>;
  readonly handoffHeld: Gauge;
  readonly resumes: Counter<'result'>;
  readonly resumeReplayed: Counter;
  readonly recoveryBuffered: Gauge;
  readonly duplicatesDropped: Counter<'path'>;
  readonly sendRetries: Counter<'result'>;
  readonly sendDedupEvictions: Counter;

  constructor(options: { defaultMetrics?: boolean } = {}) {
    const registry = new Registry();
    this.registry = registry;
    if (options.defaultMetrics ?? true) collectDefaultMetrics({ register: registry });
    const registers = [registry];
    this.connections = new Gauge({
      name: 'chat_node_connections',
      help: 'Open client WebSocket sessions on this node.',
      registers,
    });
    this.users = new Gauge({
      name: 'chat_node_users',
      help: 'Distinct users with at least one session on this node.',
      registers,
    });
    this.framesIn = new Counter({
      name: 'chat_node_frames_in_total',
      help: 'Client frames received, by decoded type (ping, send, legacy, auth, invalid, binary, blank: a seed client’s whitespace-only frame, draining, protocol_error; rate_limited: refused by a rate limit before decoding).',
      labelNames: ['type'],
      registers,
    });
    this.framesOut = new Counter({
      name: 'chat_node_frames_out_total',
      help: 'Frames written to client sockets, by type (message, legacy, ack, error, auth_ok, pong, ping).',
      labelNames: ['type'],
      registers,
    });
    this.deliveries = new Counter({
      name: 'chat_node_deliveries_total',
      help: 'Messages written to a receiver session, by path: local (sender on this node) or bus (via Kafka).',
      labelNames: ['path'],
      registers,
    });
    this.acks = new Counter({
      name: 'chat_node_acks_total',
      help: 'Acks sent to senders, by status (delivered, accepted, offline).',
      labelNames: ['status'],
      registers,
    });
    this.busProduced = new Counter({
      name: 'chat_node_bus_records_produced_total',
      help: 'Records acknowledged by the bus, by kind (message, presence, heartbeat).',
      labelNames: ['kind'],
      registers,
    });
    this.busProduceErrors = new Counter({
      name: 'chat_node_bus_produce_errors_total',
      help: 'Records the bus failed to take (unavailable, timeout), by kind.',
      labelNames: ['kind'],
      registers,
    });
    this.busConsumed = new Counter({
      name: 'chat_node_bus_records_consumed_total',
      help: 'Records read from the bus, by kind (message, presence, heartbeat).',
      labelNames: ['kind'],
      registers,
    });
    this.busConsumeErrors = new Counter({
      name: 'chat_node_bus_consume_errors_total',
      help: 'Bus records skipped or consumer failures, by reason (invalid_record, handler_error, consumer_crash).',
      labelNames: ['reason'],
      registers,
    });
    this.busRecordsIgnored = new Counter({
      name: 'chat_node_bus_records_ignored_total',
      help: 'Directory records (kind: heartbeat, presence, offset) ignored by reason: unsigned or bad_signature (not signed with the cluster secret: a forgery, or a writer with another secret) and stale (older than one already read for the same key: a replay, or a consumer reading its topics again).',
      labelNames: ['kind', 'reason'],
      registers,
    });
    this.busRecordsUnsignedAccepted = new Counter({
      name: 'chat_node_bus_records_unsigned_accepted_total',
      help: 'Unsigned directory records accepted because CHAT_CLUSTER_RECORD_AUTH=permissive (a rolling upgrade from a version that did not sign), by kind.',
      labelNames: ['kind'],
      registers,
    });
    this.busProduceSeconds = new Histogram({
      name: 'chat_node_bus_produce_duration_seconds',
      help: 'Time from handing a batch to Kafka to its acknowledgement (acks=all).',
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
      registers,
    });
    this.ready = new Gauge({
      name: 'chat_node_ready',
      help: '1 when the node accepts connections and its bus works, else 0 (what /readyz answers).',
      registers,
    });
    this.deliveryLatency = new Histogram({
      name: 'chat_node_delivery_latency_seconds',
      help: 'End-to-end delivery latency, sender’s frame in to receiver’s frame out, by path (local; bus, measured from the origin node’s clock).',
      labelNames: ['path'],
      buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
      registers,
    });
    this.shardsOwned = new Gauge({
      name: 'chat_node_shards_owned',
      help: 'Shards this node owns and reads (their partitions of the message topic); every shard in seed mode.',
      registers,
    });
    this.shardHandovers = new Gauge({
      name: 'chat_node_shard_handovers',
      help: "Shards between owners on this node (Kafka bus), by side: taking (given to this node by its owner table, waiting for the previous owner's release, at most the hand-over timeout: 10 s), releasing (let go, the final position not yet written to the shard-offsets topic: retried every commit interval). 0 when no hand-over is under way.",
      labelNames: ['side'],
      registers,
    });
    this.consumerLag = new Gauge({
      name: 'chat_node_bus_consumer_lag_records',
      help: 'Records on the message topic this node has not consumed yet (sum over partitions, as of its last fetch).',
      registers,
    });
    this.errorsSent = new Counter({
      name: 'chat_node_errors_sent_total',
      help: 'Error frames sent to clients: refused or undeliverable frames, by error code (docs/errors.md).',
      labelNames: ['code'],
      registers,
    });
    this.limitHits = new Counter({
      name: 'chat_node_limit_hits_total',
      help: 'Limits enforced, by limit (rate, rate_bytes, user_rate, user_rate_bytes: frames and bytes per second of a connection and of a user across their connections; rate_close, user_connections, node_connections, slow_consumer, frame_size).',
      labelNames: ['limit'],
      registers,
    });
    this.authFailures = new Counter({
      name: 'chat_node_auth_failures_total',
      help: 'Refused tokens and origins at upgrade, refresh or expiry, by error code.',
      labelNames: ['code'],
      registers,
    });
    this.authKeyErrors = new Counter({
      name: 'chat_node_auth_key_errors_total',
      help: 'JWKS loads that failed (unreadable, not JSON, no keys, fetch failed), each broken version once, by source (file, url); the last good key set stays in use.',
      labelNames: ['source'],
      registers,
    });
    this.sendRetries = new Counter({
      name: 'chat_node_send_retries_total',
      help: 'Sends repeated with the same cid, receiver and body within CHAT_NODE_SEND_DEDUP_WINDOW_MS, by how they were answered: replayed (the first ack again, not delivered again), joined (waited for the first attempt, still in flight), resent (after NODE_ERR_BUS_TIMEOUT, sent again with the same server id).',
      labelNames: ['result'],
      registers,
    });
    for (const result of ['replayed', 'joined', 'resent']) this.sendRetries.inc({ result }, 0);
    this.sendDedupEvictions = new Counter({
      name: 'chat_node_send_dedup_evictions_total',
      help: 'Sends forgotten by the retry window before it ended because a sender or the node reached its bound (oldest first); a retry of one is sent again with the same server id.',
      registers,
    });
    this.migrations = new Counter({
      name: 'chat_node_migrations_total',
      help: 'Sessions closed with 4002 because a router asked (their affinity key moved to another node).',
      registers,
    });
    this.deadPeers = new Counter({
      name: 'chat_node_dead_peers_terminated_total',
      help: 'Client sockets terminated because they stayed silent past CHAT_NODE_IDLE_TIMEOUT_MS.',
      registers,
    });
    this.handoff = new Counter({
      name: 'chat_node_handoff_total',
      help: 'Records held for a receiver who had no session here yet (handoff), by how they left the hold: delivered (the receiver arrived), expired (CHAT_NODE_HANDOFF_GRACE_MS passed), overflow (CHAT_NODE_HANDOFF_MAX_MESSAGES reached, oldest first), released (this node stopped reading their shard; its next owner reads them again).',
      labelNames: ['result'],
      registers,
    });
    this.handoffHeld = new Gauge({
      name: 'chat_node_handoff_held_messages',
      help: 'Records held now for receivers expected to reconnect here (handoff).',
      registers,
    });
    this.resumes = new Counter({
      name: 'chat_node_resumes_total',
      help: 'Connections opened with a resume position (`since`), by answer: recovered (the whole gap written), or why not: too_old (older than the recovery buffer), epoch (another log), shard (another shard), not_owner (this node did not read the shard within CHAT_NODE_RECOVERY_WAIT_MS), not_durable (fast mode), invalid (malformed `since`).',
      labelNames: ['result'],
      registers,
    });
    this.resumeReplayed = new Counter({
      name: 'chat_node_resume_replayed_messages_total',
      help: 'Messages written to resuming connections from the recovery buffer (the gaps filled).',
      registers,
    });
    this.recoveryBuffered = new Gauge({
      name: 'chat_node_recovery_buffered_messages',
      help: 'Records kept now in the recovery buffer (durable mode), over the shards this node reads.',
      registers,
    });
    this.duplicatesDropped = new Counter({
      name: 'chat_node_duplicates_dropped_total',
      help: 'Messages not written because the same server message id was already written to the same receiver within CHAT_NODE_SEND_DEDUP_WINDOW_MS (a record read again after a crash or hand-over, a retried send), by path (local, bus, handoff).',
      labelNames: ['path'],
      registers,
    });
    // Series exist from the start (at 0), so rate() and alerts see them before the first event.
    for (const kind of ['message', 'presence', 'heartbeat']) {
      this.busProduced.inc({ kind }, 0);
      this.busProduceErrors.inc({ kind }, 0);
      this.busConsumed.inc({ kind }, 0);
    }
    for (const kind of ['heartbeat', 'presence', 'offset'])
      for (const reason of ['unsigned', 'bad_signature', 'stale'])
        this.busRecordsIgnored.inc({ kind, reason }, 0);
    for (const reason of ['invalid_record', 'handler_error', 'consumer_crash'])
      this.busConsumeErrors.inc({ reason }, 0);
    for (const path of ['local', 'bus']) this.deliveries.inc({ path }, 0);
    for (const path of ['local', 'bus', 'handoff']) this.duplicatesDropped.inc({ path }, 0);
    for (const result of ['delivered', 'expired', 'overflow', 'released']) this.handoff.inc({ result }, 0);
    for (const side of ['taking', 'releasing']) this.shardHandovers.set({ side }, 0);
    for (const status of ['delivered', 'accepted', 'offline']) this.acks.inc({ status }, 0);
    for (const result of ['recovered', 'too_old', 'epoch', 'shard', 'not_owner', 'not_durable', 'invalid'])
      this.resumes.inc({ result }, 0);
    for (const limit of [
      'rate',
      'rate_bytes',
      'user_rate',
      'user_rate_bytes',
      'rate_close',
      'user_connections',
      'node_connections',
      'slow_consumer',
      'frame_size',
    ]) {
      this.limitHits.inc({ limit }, 0);
    }
  }
}
