import { z } from 'zod';
import { LegacyDirectMessage, MessageFrame, UserId } from '../protocol/schemas.js';

/**
 * Records on the cluster's Kafka topics. Inbound records are a trust boundary (during a rolling deploy
 * another version may be producing): consumers validate them with these schemas and skip, count and log
 * what does not match. Every record carries `v`, the record format version.
 */

export const NodeId = z.string().regex(/^[A-Za-z0-9._-]{1,64}$/);

/** A direct message crossing nodes; key = receiver. `frame` is exactly what the receiver gets. */
export const BusMessage = z.strictObject({
  v: z.literal(1),
  /** Server message id. */
  id: z.string().min(1).max(128),
  /** Node that accepted the send (and delivered to its own sessions already). */
  origin: NodeId,
  from: UserId,
  to: UserId,
  /** When the origin node received the frame (ms since the epoch), for end-to-end latency. */
  ts: z.number().int().nonnegative(),
  frame: z.union([MessageFrame, LegacyDirectMessage]),
});

export const MemberState = z.enum(['active', 'draining']);

/** A node's heartbeat on the members topic; key = node id; a tombstone (null) when it leaves. */
export const MemberHeartbeat = z.strictObject({
  v: z.literal(1),
  id: NodeId,
  /** Where routers reach the node (ws:// or http:// base URL). */
  url: z.string().min(1).max(2048),
  weight: z.number().int().min(1).max(1000),
  state: MemberState,
  /** Random per process start: tells a restarted node from its previous life. */
  epoch: z.string().min(1).max(64),
  ts: z.number().int().nonnegative(),
  /** The sender's heartbeat interval, so readers can judge staleness. */
  intervalMs: z.number().int().positive(),
});

/** One user held by one node, on the presence topic; key = `${nodeId}/${userId}`; tombstone on removal. */
export const PresenceRecord = z.strictObject({
  v: z.literal(1),
  userId: UserId,
  nodeId: NodeId,
  epoch: z.string().min(1).max(64),
  /** The shard of the user's affinity key: where messages to them go (absent from version 1 nodes). */
  shard: z.number().int().min(0).max(65_535).optional(),
});

/**
 * A shard's consumer position on the compacted shard-offsets topic; key = the shard number. The owner
 * writes it every commit interval and when it lets the shard go (`released`); the next owner starts
 * from `offset` (after a crash, from the last one written: messages since may be delivered twice).
 */
export const ShardOffset = z.strictObject({
  v: z.literal(1),
  shard: z.number().int().min(0).max(65_535),
  /** The next offset to read in the shard's partition. */
  offset: z.number().int().nonnegative(),
  /** The node that wrote it, and its incarnation. */
  node: NodeId,
  epoch: z.string().min(1).max(64),
  /** The writer no longer reads the shard: the next owner may start at once. */
  released: z.boolean(),
  ts: z.number().int().nonnegative(),
});

export type BusMessage = z.infer<typeof BusMessage>;
export type ShardOffset = z.infer<typeof ShardOffset>;
export type MemberState = z.infer<typeof MemberState>;
export type MemberHeartbeat = z.infer<typeof MemberHeartbeat>;
export type PresenceRecord = z.infer<typeof PresenceRecord>;

/** The cluster's topic names under a prefix (CHAT_KAFKA_TOPIC_PREFIX). */
export function topicNames(prefix: string) {
  return {
    messages: `${prefix}.messages`,
    presence: `${prefix}.presence`,
    members: `${prefix}.members`,
    shardOffsets: `${prefix}.shard-offsets`,
  } as const;
}

/** Presence record key: node first, so one node's entries are easy to find and tombstone. */
export function presenceKey(nodeId: string, userId: string): string {
  return `${nodeId}/${userId}`;
}

/** Splits a presence key; undefined when malformed. */
export function parsePresenceKey(key: string): { nodeId: string; userId: string } | undefined {
  const slash = key.indexOf('/');
  if (slash <= 0 || slash === key.length - 1) return undefined;
  return { nodeId: key.slice(0, slash), userId: key.slice(slash + 1) };
}
