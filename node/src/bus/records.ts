import {
  BusMessage,
  MemberHeartbeat,
  ShardOffset,
  PresenceRecord,
  parsePresenceKey,
  presenceKey,
  type MemberHeartbeat as Heartbeat,
  type PresenceRecord as Presence,
} from '@chat/shared';

// How both buses encode and validate records, so the in-process bus cannot drift from Kafka: a record is
// a key and a JSON value (null = tombstone); decoding validates with the schemas in @chat/shared and
// throws on anything that does not match (the bus skips, counts and logs it).

/** A record as it travels: Kafka's key and value, as strings. */
export interface EncodedRecord {
  readonly key: string;
  readonly value: string | null;
}

export function encodeMessage(message: BusMessage): EncodedRecord {
  return { key: message.to, value: JSON.stringify(message) };
}

export function encodePresence(nodeId: string, userId: string, record: Presence | null): EncodedRecord {
  return { key: presenceKey(nodeId, userId), value: record && JSON.stringify(record) };
}

export function encodeHeartbeat(nodeId: string, heartbeat: Heartbeat | null): EncodedRecord {
  return { key: nodeId, value: heartbeat && JSON.stringify(heartbeat) };
}

function json(value: string | null): unknown {
  return value === null ? null : (JSON.parse(value) as unknown);
}

/** A message record's value, validated; throws when it is not a valid BusMessage. */
export function decodeMessage(value: string | null): BusMessage {
  return BusMessage.parse(json(value));
}

/** A presence record, validated; throws on a malformed key or value. */
export function decodePresence(
  key: string,
  value: string | null,
): { nodeId: string; userId: string; record: Presence | null } {
  const parsed = parsePresenceKey(key);
  if (!parsed) throw new Error('bad presence key');
  const raw = json(value);
  return { ...parsed, record: raw === null ? null : PresenceRecord.parse(raw) };
}

/** A members record, validated; throws on a malformed value. */
export function decodeHeartbeat(
  key: string,
  value: string | null,
): { id: string; heartbeat: Heartbeat | null } {
  const raw = json(value);
  return { id: key, heartbeat: raw === null ? null : MemberHeartbeat.parse(raw) };
}

export function encodeShardOffset(offset: ShardOffset): EncodedRecord {
  return { key: String(offset.shard), value: JSON.stringify(offset) };
}

/** A shard-offsets record, validated; throws when the key does not match the value's shard. */
export function decodeShardOffset(key: string, value: string | null): ShardOffset {
  const offset = ShardOffset.parse(json(value));
  if (String(offset.shard) !== key) throw new Error('shard-offsets key does not match its shard');
  return offset;
}

/** The shard-offsets record that names the messages log's epoch (not a shard: older nodes skip it). */
export const LOG_EPOCH_KEY = 'log-epoch';

const LOG_EPOCH = /^[A-Za-z0-9-]{1,64}$/;

export function encodeLogEpoch(epoch: string): EncodedRecord {
  return { key: LOG_EPOCH_KEY, value: JSON.stringify({ v: 1, epoch }) };
}

/** A log-epoch record's epoch; throws when the value is not `{v: 1, epoch}` with a valid epoch. */
export function decodeLogEpoch(value: string | null): string {
  const raw = json(value) as { v?: unknown; epoch?: unknown } | null;
  if (raw === null || typeof raw !== 'object' || raw.v !== 1 || typeof raw.epoch !== 'string')
    throw new Error('bad log-epoch record');
  if (!LOG_EPOCH.test(raw.epoch)) throw new Error('bad log epoch');
  return raw.epoch;
}
