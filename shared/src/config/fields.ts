import { isIP } from 'node:net';

/**
 * Typed configuration fields. Each field names its `CHAT_*` environment variable, its default and one
 * sentence of documentation; `parse` turns the raw string into the value or throws a message saying
 * what was expected. The loader (load.ts) and the generated docs (docs/configuration.md) read these.
 */
export interface Field<T> {
  readonly env: string;
  readonly default: T;
  readonly doc: string;
  /** Human description of the accepted values, shown in docs and error messages. */
  readonly accepts: string;
  /** Values that must not be logged (tokens, secrets). */
  readonly secret: boolean;
  readonly parse: (raw: string) => T;
}

interface Common<T> {
  env: string;
  default: T;
  doc: string;
  secret?: boolean;
}

const ENV_NAME = /^CHAT_[A-Z0-9]+(?:_[A-Z0-9]+)*$/;

function field<T>(spec: Common<T>, accepts: string, parse: (raw: string) => T): Field<T> {
  if (!ENV_NAME.test(spec.env)) {
    throw new Error(`config field env name ${spec.env} must look like CHAT_<COMPONENT>_<THING>`);
  }
  return Object.freeze({
    env: spec.env,
    default: spec.default,
    doc: spec.doc,
    accepts,
    secret: spec.secret ?? false,
    parse,
  });
}

/** A string; `pattern` (optional) must match the whole value. */
export function str(spec: Common<string> & { pattern?: RegExp; patternDoc?: string }): Field<string> {
  const accepts =
    spec.patternDoc ?? (spec.pattern ? `a string matching ${String(spec.pattern)}` : 'a string');
  return field(spec, accepts, (raw) => {
    if (spec.pattern && !spec.pattern.test(raw)) throw new Error(`expected ${accepts}`);
    return raw;
  });
}

/** An integer within [min, max]; `_` separators allowed (e.g. 1_000_000). */
export function int(spec: Common<number> & { min: number; max: number }): Field<number> {
  const accepts = `an integer from ${spec.min} to ${spec.max}`;
  return field(spec, accepts, (raw) => {
    const text = raw.trim().replaceAll('_', '');
    if (!/^-?\d+$/.test(text)) throw new Error(`expected ${accepts}`);
    const value = Number(text);
    if (!Number.isSafeInteger(value) || value < spec.min || value > spec.max) {
      throw new Error(`expected ${accepts}`);
    }
    return value;
  });
}

const TRUE = new Set(['1', 'true', 'yes', 'on']);
const FALSE = new Set(['0', 'false', 'no', 'off']);

/** A boolean: 1/true/yes/on or 0/false/no/off, case-insensitive. */
export function bool(spec: Common<boolean>): Field<boolean> {
  const accepts = 'true or false (also 1/0, yes/no, on/off)';
  return field(spec, accepts, (raw) => {
    const text = raw.trim().toLowerCase();
    if (TRUE.has(text)) return true;
    if (FALSE.has(text)) return false;
    throw new Error(`expected ${accepts}`);
  });
}

/** One of a fixed set of strings. */
export function oneOf<const V extends string>(spec: Common<V> & { values: readonly V[] }): Field<V> {
  const accepts = `one of ${spec.values.join(', ')}`;
  return field(spec, accepts, (raw) => {
    const text = raw.trim();
    const found = spec.values.find((v) => v === text);
    if (found === undefined) throw new Error(`expected ${accepts}`);
    return found;
  });
}

/** A comma-separated list of non-empty strings (whitespace around items ignored; empty string = []). */
export function list(
  spec: Common<readonly string[]> & { item?: RegExp; itemDoc?: string },
): Field<readonly string[]> {
  const itemDoc = spec.itemDoc ?? 'items';
  const accepts = `a comma-separated list of ${itemDoc}`;
  return field(spec, accepts, (raw) => {
    const items = raw
      .split(',')
      .map((s) => s.trim())
      .filter((s) => s.length > 0);
    const bad = spec.item ? items.filter((s) => !spec.item?.test(s)) : [];
    if (bad.length > 0) throw new Error(`expected ${accepts}; bad item(s): ${bad.join(', ')}`);
    return Object.freeze(items);
  });
}

/**
 * Why `text` is not an IPv4 or IPv6 address or CIDR block (`10.0.0.0/8`, `fd00::/8`, `192.0.2.7`), or
 * undefined when it is one. A single address is its own block (/32, /128); no zone ids (`%eth0`). Entries
 * run together with spaces (`10.0.0.0/8 192.0.2.1`) are told to use commas; a block with host bits set
 * (`10.0.0.1/8`) is refused with its network address (`10.0.0.0/8`), since what was meant is unclear.
 */
export function cidrProblem(text: string): string | undefined {
  if (/\s/.test(text.trim())) return 'separate entries with commas, not spaces';
  const slash = text.indexOf('/');
  const address = slash < 0 ? text : text.slice(0, slash);
  const family = isIP(address);
  if (family === 0 || address.includes('%')) return 'not an IPv4 or IPv6 address';
  if (slash < 0) return undefined;
  const prefix = text.slice(slash + 1);
  const max = family === 4 ? 32 : 128;
  if (!/^\d{1,3}$/.test(prefix) || Number(prefix) > max) return `prefix length not 0-${max}`;
  const bytes = bytesOf(address, family === 4 ? 4 : 6);
  const network = bytes.map((b, i) => b & maskByte(Number(prefix) - i * 8));
  if (network.some((b, i) => b !== bytes[i])) {
    return `host bits set: the block is ${formatAddress(network)}/${prefix} (write that, or the address alone)`;
  }
  return undefined;
}

/** True for a block that holds every address of its family (`0.0.0.0/0`, `::/0`). */
export function cidrIsEverything(text: string): boolean {
  return /\/0+$/.test(text.trim());
}

/** The mask of one byte that has `bits` (clamped to 0-8) leading network bits. */
const maskByte = (bits: number) => (0xff00 >> Math.max(0, Math.min(8, bits))) & 0xff;

/** A valid IPv4 (4 bytes) or IPv6 (16 bytes, an IPv4 tail included) address as bytes. */
function bytesOf(address: string, family: 4 | 6): number[] {
  if (family === 4) return address.split('.').map(Number);
  let text = address;
  const tail: number[] = [];
  const dotted = /(\d+\.\d+\.\d+\.\d+)$/.exec(text)?.[1];
  if (dotted !== undefined) {
    tail.push(...dotted.split('.').map(Number));
    text = text.slice(0, -dotted.length);
    if (text.endsWith(':') && !text.endsWith('::')) text = text.slice(0, -1);
  }
  const words = (part: string) => (part === '' ? [] : part.split(':').map((h) => parseInt(h, 16)));
  const [head = '', rest] = text.split('::');
  const high = words(head);
  const low = rest === undefined ? [] : words(rest);
  const zeros = rest === undefined ? 0 : 8 - tail.length / 2 - high.length - low.length;
  return [...high, ...new Array<number>(zeros).fill(0), ...low]
    .flatMap((w) => [w >> 8, w & 0xff])
    .concat(tail);
}

/** 4 bytes as dotted IPv4, 16 as compressed IPv6. */
function formatAddress(bytes: readonly number[]): string {
  if (bytes.length === 4) return bytes.join('.');
  const words = [];
  for (let i = 0; i < 16; i += 2) words.push((((bytes[i] ?? 0) << 8) | (bytes[i + 1] ?? 0)).toString(16));
  // The URL parser writes IPv6 in its compressed form (RFC 5952).
  return new URL(`http://[${words.join(':')}]/`).hostname.slice(1, -1);
}

/** A comma-separated list of CIDR blocks or single addresses, IPv4 and IPv6 (see `cidrProblem`). */
export function cidrList(spec: Common<readonly string[]>): Field<readonly string[]> {
  const accepts =
    'a comma-separated list of IPv4/IPv6 CIDR blocks or addresses (10.0.0.0/8, fd00::/8, 192.0.2.7)';
  return field(spec, accepts, (raw) => {
    const items = raw
      .split(',')
      .map((s) => s.trim())
      .filter((s) => s.length > 0);
    const bad = items.flatMap((item) => {
      const problem = cidrProblem(item);
      return problem === undefined ? [] : [`${item} (${problem})`];
    });
    if (bad.length > 0) throw new Error(`expected ${accepts}; bad item(s): ${bad.join(', ')}`);
    return Object.freeze(items);
  });
}

/** host:port pairs, as Kafka brokers are given. */
export const HOST_PORT = /^[A-Za-z0-9.-]+:\d{1,5}$|^\[[0-9A-Fa-f:]+\]:\d{1,5}$/;
