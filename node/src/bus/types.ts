import type { BusMessage, MemberHeartbeat, PresenceRecord } from '@chat/shared';

/** One user's presence on this node: a record while present, null once its last session closed. */
export interface PresenceUpdate {
  readonly userId: string;
  readonly record: PresenceRecord | null;
}

/** What a bus hands to its node. Records arrive validated; invalid ones are counted and skipped. */
export interface BusHandlers {
  /** A cross-node message (including this node's own, which the node skips). */
  onMessage(message: BusMessage): void;
  /** `record` null: the entry `nodeId/userId` was removed. */
  onPresence(nodeId: string, userId: string, record: PresenceRecord | null): void;
  /** `heartbeat` null: node `id` left (tombstone). */
  onMember(id: string, heartbeat: MemberHeartbeat | null): void;
  /** The bus became usable or unusable (Kafka reachable, consumer assigned). */
  onReadyChange(ready: boolean): void;
}

/**
 * The seam between a chat node and the system carrying messages between nodes: Kafka in a cluster, an
 * in-process hub for unit tests and the single-machine default. Publishing resolves once the record is
 * durably accepted (Kafka: acks=all) and rejects with a retryable ChatError otherwise.
 */
export interface ChatBus {
  readonly kind: 'kafka' | 'memory';
  /** Connects and starts delivering to `handlers`; resolves when ready and the directory is caught up. */
  start(handlers: BusHandlers): Promise<void>;
  publishMessage(message: BusMessage): Promise<void>;
  /** Publishes (record) or removes (null) presence entries of users on this node, in one request. */
  publishPresence(updates: readonly PresenceUpdate[]): Promise<void>;
  /** Publishes this node's heartbeat, or its goodbye tombstone (null). */
  publishHeartbeat(heartbeat: MemberHeartbeat | null): Promise<void>;
  isReady(): boolean;
  /** Flushes what is pending, commits offsets, disconnects. */
  stop(): Promise<void>;
}
