import { BlockList, isIP } from 'node:net';
import { ChatError, cidrIsEverything, cidrProblem } from '@chat/shared';

/** A handshake's client as the router sees it. */
export interface ClientAddress {
  /** The client's address: the TCP peer, or what trusted proxies said (canonical form, IPv4 unmapped). */
  readonly address: string;
  /**
   * The hops from the client to the router that the router vouches for, client first: the
   * `X-Forwarded-For` the node gets. Entries left of the client (a client can write anything there) are
   * dropped.
   */
  readonly chain: readonly string[];
  /** Where `address` came from: the peer (not a trusted proxy, or no usable header) or the header. */
  readonly source: 'peer' | 'forwarded' | 'malformed';
}

/**
 * An address in one canonical text form, so that one client is one key whatever way it was written:
 * IPv6 lower-case and compressed (`2001:db8::1`), IPv4-mapped IPv6 (`::ffff:127.0.0.1`, how a dual-stack
 * listener reports IPv4 peers) as plain IPv4. Accepts `[v6]` and `[v6]:port`, and `v4:port` (some proxies
 * write ports). Undefined for anything else.
 */
export function canonicalAddress(text: string): string | undefined {
  let address = text.trim();
  const bracketed = /^\[([^\]]+)\](?::\d{1,5})?$/.exec(address);
  if (bracketed) address = bracketed[1] ?? '';
  else if (/^[\d.]+:\d{1,5}$/.test(address)) address = address.slice(0, address.indexOf(':'));
  const family = isIP(address);
  if (family === 4) return address;
  if (family !== 6 || address.includes('%')) return undefined;
  // The URL parser writes IPv6 in its canonical form (RFC 5952).
  const v6 = new URL(`http://[${address}]/`).hostname.slice(1, -1);
  const mapped = /^::ffff:([0-9a-f]{1,4}):([0-9a-f]{1,4})$/.exec(v6);
  if (!mapped) return v6;
  const [hi, lo] = [parseInt(mapped[1] ?? '0', 16), parseInt(mapped[2] ?? '0', 16)];
  return `${hi >> 8}.${hi & 0xff}.${lo >> 8}.${lo & 0xff}`;
}

/**
 * The proxies whose `X-Forwarded-For` the router believes (CHAT_ROUTER_TRUSTED_PROXIES), and the client
 * address of a handshake. Behind a load balancer every TCP peer is the balancer, so a per-address limit
 * would throttle all its clients together; trusting any header by default would let every client claim
 * any address (and dodge the limit), so nothing is trusted unless listed.
 */
export class TrustedProxies {
  readonly #blocks = new BlockList();
  /** The configured entries. */
  readonly size: number;
  /**
   * Entries that hold every address of their family (`0.0.0.0/0`, `::/0`): accepted, since a test rig
   * may want them, but then any client can claim any address; the router warns at start-up.
   */
  readonly everything: readonly string[];

  /**
   * `cidrs`: CIDR blocks or single addresses; an invalid one (not an address, a bad prefix, host bits set,
   * entries separated by spaces) is a CONFIG_ERR_INVALID saying why.
   */
  constructor(cidrs: readonly string[]) {
    for (const cidr of cidrs) {
      const problem = cidrProblem(cidr);
      if (problem !== undefined) {
        throw new ChatError('CONFIG_ERR_INVALID', `CHAT_ROUTER_TRUSTED_PROXIES: ${cidr}: ${problem}`);
      }
      const [address = '', prefix] = cidr.split('/');
      const family = isIP(address) === 4 ? 'ipv4' : 'ipv6';
      const bits = prefix === undefined ? (family === 'ipv4' ? 32 : 128) : Number(prefix);
      this.#blocks.addSubnet(address, bits, family);
    }
    this.size = cidrs.length;
    this.everything = cidrs.filter(cidrIsEverything);
  }

  /** True when `address` (canonical, see `canonicalAddress`) is in a trusted block. */
  trusts(address: string): boolean {
    if (this.size === 0) return false;
    // BlockList matches IPv4 against IPv4-mapped IPv6 blocks and the reverse.
    return this.#blocks.check(address, isIP(address) === 4 ? 'ipv4' : 'ipv6');
  }

  /**
   * The client behind `peer` (the socket's remote address): when the peer is trusted, walks
   * `forwardedFor` (every `X-Forwarded-For` value, in order) from the right, skipping trusted entries,
   * and takes the first untrusted one; a client can only prepend entries, and those are never reached.
   * All trusted: the leftmost. No header, or an entry that is not an address before the walk ends: the
   * peer (`malformed`).
   */
  resolve(peer: string | undefined, forwardedFor: string | string[] | undefined): ClientAddress {
    const self = canonicalAddress(peer ?? '') ?? 'unknown';
    if (!this.trusts(self)) return { address: self, chain: [self], source: 'peer' };
    const values = Array.isArray(forwardedFor) ? forwardedFor.join(',') : (forwardedFor ?? '');
    const entries = values.split(',');
    if (values.trim() === '') return { address: self, chain: [self], source: 'peer' };
    const chain = [self];
    for (let i = entries.length - 1; i >= 0; i--) {
      const hop = canonicalAddress(entries[i] ?? '');
      if (hop === undefined) return { address: self, chain: [self], source: 'malformed' };
      chain.unshift(hop);
      if (!this.trusts(hop)) break;
    }
    return { address: chain[0] ?? self, chain, source: 'forwarded' };
  }
}
