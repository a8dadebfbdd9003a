import { createHmac, hkdfSync, timingSafeEqual } from 'node:crypto';

/**
 * Authentic directory records. Every record a node writes on the compacted topics (members, presence,
 * shard-offsets; tombstones included) carries two Kafka headers: `chat-ts`, the time it was signed (ms since
 * the epoch), and `chat-mac`, an HMAC-SHA256 over a canonical encoding of the topic, the key, that time and
 * the value (or a tombstone marker), with a key derived from the cluster secret (CHAT_CLUSTER_SECRET). A
 * reader without the right MAC ignores the record (`RecordGate`), so anyone who can write to Kafka but does
 * not know the secret cannot add a member, move a user or a shard position, nor remove one.
 *
 * Headers, not a field in the value: readers of the previous version ignore headers, so they keep reading
 * signed records during a rolling upgrade (docs/operations.md).
 */

export const RECORD_MAC_HEADER = 'chat-mac';
export const RECORD_TS_HEADER = 'chat-ts';

/** Domain separation: these keys sign directory records and nothing else. */
const HKDF_INFO = 'chat cluster directory record mac v1';
const MAC_BYTES = 32;
const TOMBSTONE = 0xffff_ffff;

/** Derives the MAC key from a cluster secret (HKDF-SHA256; the secret itself never keys the MAC). */
export function deriveRecordKey(secret: string): Buffer {
  if (secret.length === 0) throw new Error('empty cluster secret');
  return Buffer.from(hkdfSync('sha256', Buffer.from(secret, 'utf8'), Buffer.alloc(0), HKDF_INFO, MAC_BYTES));
}

function lengthPrefixed(parts: readonly (Buffer | null)[]): Buffer {
  const chunks: Buffer[] = [];
  for (const part of parts) {
    const length = Buffer.alloc(4);
    length.writeUInt32BE(part === null ? TOMBSTONE : part.length);
    chunks.push(length);
    if (part) chunks.push(part);
  }
  return Buffer.concat(chunks);
}

/**
 * The bytes a MAC covers: version tag, topic, key, signing time and value, each length-prefixed (a
 * tombstone's value is a marker no real length can take), so no two different records encode alike.
 */
export function canonicalRecord(
  topic: string,
  key: string,
  ts: number,
  value: Buffer | string | null,
): Buffer {
  const utf8 = (s: string) => Buffer.from(s, 'utf8');
  return lengthPrefixed([
    utf8('chat-record-v1'),
    utf8(topic),
    utf8(key),
    utf8(String(ts)),
    value === null ? null : typeof value === 'string' ? utf8(value) : value,
  ]);
}

/** Kafka headers as kafkajs hands them over (a header may repeat). */
export type RecordHeaders = Readonly<Record<string, Buffer | string | (Buffer | string)[] | undefined>>;

/** What checking a record's headers found. */
export type MacCheck =
  | { readonly ok: true; readonly ts: number }
  | { readonly ok: false; readonly reason: 'unsigned' | 'bad_signature' };

function single(value: Buffer | string | (Buffer | string)[] | undefined): string | undefined | null {
  if (value === undefined) return undefined;
  if (Array.isArray(value)) return value.length === 1 ? single(value[0]) : null;
  return typeof value === 'string' ? value : value.toString('latin1');
}

/**
 * Signs and checks directory records with the current key, and checks them with accepted extra keys too
 * (key rotation: docs/operations.md). The signing time never goes backwards within a process.
 */
export class RecordMac {
  readonly #signKey: Buffer;
  readonly #verifyKeys: readonly Buffer[];
  readonly #now: () => number;
  #lastTs = 0;

  /** `secret`: signs and verifies; `accepted`: further secrets whose signatures verify (never used to sign). */
  constructor(options: { secret: string; accepted?: readonly string[]; now?: () => number }) {
    this.#signKey = deriveRecordKey(options.secret);
    this.#verifyKeys = [
      this.#signKey,
      ...(options.accepted ?? []).filter((s) => s.length > 0).map(deriveRecordKey),
    ];
    this.#now = options.now ?? Date.now;
  }

  /** The headers that make `value` under `key` on `topic` authentic. */
  sign(topic: string, key: string, value: Buffer | string | null): Record<string, string> {
    const ts = Math.max(this.#now(), this.#lastTs);
    this.#lastTs = ts;
    const mac = createHmac('sha256', this.#signKey)
      .update(canonicalRecord(topic, key, ts, value))
      .digest();
    return { [RECORD_TS_HEADER]: String(ts), [RECORD_MAC_HEADER]: mac.toString('base64') };
  }

  /** Whether the record carries a valid MAC (under any accepted key), and its signing time when so. */
  verify(
    topic: string,
    key: string,
    value: Buffer | string | null,
    headers: RecordHeaders | undefined,
  ): MacCheck {
    const macText = single(headers?.[RECORD_MAC_HEADER]);
    const tsText = single(headers?.[RECORD_TS_HEADER]);
    if (macText === undefined && tsText === undefined) return { ok: false, reason: 'unsigned' };
    if (!macText || !tsText || !/^\d{1,15}$/.test(tsText)) return { ok: false, reason: 'bad_signature' };
    const mac = Buffer.from(macText, 'base64');
    if (mac.length !== MAC_BYTES) return { ok: false, reason: 'bad_signature' };
    const ts = Number(tsText);
    const canonical = canonicalRecord(topic, key, ts, value);
    for (const k of this.#verifyKeys) {
      if (timingSafeEqual(createHmac('sha256', k).update(canonical).digest(), mac)) return { ok: true, ts };
    }
    return { ok: false, reason: 'bad_signature' };
  }
}
