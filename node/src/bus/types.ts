import type { BusMessage, MemberHeartbeat, PresenceRecord } from '@chat/shared';

// The seam between a chat node and the system carrying records between nodes: Kafka in a cluster
// (kafka-bus.ts), an in-process hub for tests and the single-machine default (memory-bus.ts). It has two
// halves with different guarantees: the message path (MessageBus) and the directory of members and
// presence (DirectoryBus). ChatBus is both plus one lifecycle. test/src/bus/contract.ts checks every
// guarantee written here against both implementations.
//
// Common to every publish: it resolves once the record is durably accepted (Kafka: written with
// acks=all; in-process: handed to the hub), within the publish timeout. It rejects with a retryable
// ChatError: `KAFKA_ERR_UNAVAILABLE` when the record was never handed to Kafka (the bus is not started,
// stopped, or known to be unavailable): it is not written; `KAFKA_ERR_TIMEOUT` when it was and Kafka did
// not confirm it in time: it may still be written and delivered (readers tolerate duplicates). Inbound records are a trust boundary: both buses validate them
// with the schemas in @chat/shared (records.ts in this folder) and skip and count what does not match,
// so a handler only ever sees valid records.

/** One user's presence on this node: a record while present, null once its last session closed. */
export interface PresenceUpdate {
  readonly userId: string;
  readonly record: PresenceRecord | null;
}

/** Where a message record was read: its shard and its offset in the shard's log. */
export interface MessagePosition {
  readonly shard: number;
  readonly offset: number;
  /**
   * True for a record read back from before the position its shard was taken at (durable mode's
   * recovery window, see `MessageHandlers.backfill`): its previous owner handled it already; it is there
   * for the recovery buffer and for clients resuming from an older position.
   */
  readonly backfill?: boolean;
}

/** What the message path hands to its node. */
export interface MessageHandlers {
  /**
   * A cross-node message of a shard this bus was assigned (`assignShards`), validated. Each shard's
   * messages are read by the one bus that owns it: a message is read once, by the node that holds its
   * receiver, however many nodes there are. Order: per shard, in publish order. At least once: after a
   * crash the next owner re-reads from the last position its predecessor committed, so a message may be
   * seen twice (the server message id tells); a clean hand-over (the old owner releases, the new one
   * starts from the release) delivers each message once. Messages of a shard published while nobody
   * owned it are delivered to its next owner. `position` is where it was read (offsets grow per shard).
   */
  onMessage(message: BusMessage, position: MessagePosition): void;
  /**
   * The offset of the oldest record of `shard` the node still holds undelivered (handoff), or undefined.
   * The position the bus keeps for the shard (committed every interval, written when the shard is
   * released or the bus stops) never passes it, so the next owner reads a held record again. Absent:
   * the node holds nothing.
   */
  heldFloorOf?(shard: number): number | undefined;
  /**
   * The bus stopped reading `shard` (no longer assigned, or stopping) and has fixed its final position
   * (not past `heldFloorOf`): the node drops what it holds of that shard; the next owner reads it again.
   * Called after the last `onMessage` of the shard.
   */
  onShardReleased?(shard: number): void;
  /**
   * Durable mode: how many records before the position a shard is taken at the node wants to read too
   * (flagged `backfill`), to fill its recovery buffer. Absent or 0: none.
   */
  readonly backfill?: number;
  /**
   * The bus starts reading `shard`: records from `from` on (those before `start` flagged `backfill`),
   * then what comes. Called before the first `onMessage` of the shard.
   */
  onShardTaken?(shard: number, from: number, start: number): void;
  /**
   * Whether member `nodeId` in incarnation `epoch` is alive (its heartbeats are fresh): a shard whose
   * previous owner is alive waits for its release; one whose owner died is taken at once.
   */
  isMemberAlive(nodeId: string, epoch: string): boolean;
}

/** What the directory hands to its node. */
export interface DirectoryHandlers {
  /**
   * Presence entry `nodeId/userId` set (`record`) or removed (null). Per entry, in publish order; the
   * latest state of every entry is replayed to a bus when it starts. A handler may see an entry more
   * than once, and, during replay, intermediate states and removals of entries it never saw (Kafka
   * replays the compacted log, not a snapshot): apply them as "latest wins".
   */
  onPresence(nodeId: string, userId: string, record: PresenceRecord | null): void;
  /** Member `id`'s heartbeat, or null when it left (tombstone). Same ordering and replay as presence. */
  onMember(id: string, heartbeat: MemberHeartbeat | null): void;
}

/** Everything a bus reports to its node. */
export interface BusHandlers extends MessageHandlers, DirectoryHandlers {
  /**
   * The bus became usable (true) or unusable (false); called only on a change. True before `start`
   * resolves; false when a publish failed as unavailable (Kafka: produce failed, consumer crashed; the
   * in-process bus: hub marked unavailable) and when `stop` begins. Back to true by itself once the bus
   * works again (Kafka: a heartbeat got through).
   */
  onReadyChange(ready: boolean): void;
}

/** The message path: one record per cross-node message, keyed by receiver, in the receiver's shard. */
export interface MessageBus {
  /**
   * Publishes one cross-node message to `shard`'s log (Kafka: partition `shard` of the messages topic,
   * key = receiver, idempotent producer). Fails fast with `KAFKA_ERR_UNAVAILABLE` while the bus is known
   * to be unusable (not written); rejects with `KAFKA_ERR_TIMEOUT` when the outcome is unknown (it may
   * still be written and delivered).
   */
  publishMessage(message: BusMessage, shard: number): Promise<void>;
  /**
   * The shards whose messages this bus reads from now on (`all`: every shard, the seed design's
   * broadcast). Shards no longer assigned are released (their position written for the next owner);
   * newly assigned ones start where their previous owner stopped, once it released them or died (Kafka:
   * after at most the hand-over timeout). Call it whenever the owner table changes; may be called before
   * or after `start`.
   */
  assignShards(shards: ReadonlySet<number> | 'all'): void;
  /**
   * The messages log's epoch: changes when the log is created anew (Kafka: a new id written by the node
   * that created the topic; in-process: one per hub), so a position in an old log is never applied to a
   * new one.
   */
  logEpoch(): string;
}

/** Membership and presence: compacted, replayed state, keyed by node (members) and node/user (presence). */
export interface DirectoryBus {
  /**
   * Sets (record) or removes (null) presence entries of users on this node, all in one request: it
   * resolves when all are durable, or rejects and the caller keeps them for a retry.
   */
  publishPresence(updates: readonly PresenceUpdate[]): Promise<void>;
  /**
   * Publishes this node's heartbeat, or its goodbye tombstone (null). On Kafka it is also the probe that
   * replaces a broken producer: the bus recovers through the heartbeat loop.
   */
  publishHeartbeat(heartbeat: MemberHeartbeat | null): Promise<void>;
}

/** The whole bus a chat node uses: both halves and one lifecycle. */
export interface ChatBus extends MessageBus, DirectoryBus {
  readonly kind: 'kafka' | 'memory';
  /**
   * Connects and starts delivering to `handlers`. Resolves once ready (`onReadyChange(true)` was called)
   * and the directory has been replayed up to what was published before `start` began, so the node
   * starts with a complete view. Retryable failures (a fresh broker without a group coordinator, a topic
   * without a leader yet) are retried until the start timeout; then it rejects with
   * `KAFKA_ERR_UNAVAILABLE`, having closed whatever it had opened. Call it once.
   */
  start(handlers: BusHandlers): Promise<void>;
  /** Whether publishing is expected to work now (the last value given to `onReadyChange`). */
  isReady(): boolean;
  /**
   * Flushes pending publishes, commits what was consumed, disconnects. Resolves when done (also when the
   * bus never started); no handler is called after it resolves, and later publishes reject with
   * `KAFKA_ERR_UNAVAILABLE`.
   */
  stop(): Promise<void>;
}
