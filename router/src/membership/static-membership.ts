import type { MemberInfo, MembershipSource } from './types.js';

/** Parses CHAT_ROUTER_NODES items: `id=url` or `id:weight=url`. */
export function parseStaticMembers(items: readonly string[]): MemberInfo[] {
  return items.map((item) => {
    const eq = item.indexOf('=');
    const [id = '', weight] = item.slice(0, eq).split(':');
    return {
      id,
      url: item.slice(eq + 1).replace(/\/+$/, ''),
      weight: weight ? Number(weight) : 1,
      state: 'active',
    };
  });
}

/** A fixed member list (development, the demo cluster). Health still comes from probes. */
export class StaticMembership implements MembershipSource {
  readonly kind = 'static';
  readonly #members: readonly MemberInfo[];
  #replayed = false;

  get replayed(): boolean {
    return this.#replayed;
  }

  constructor(members: readonly MemberInfo[]) {
    this.#members = members;
  }

  start(onChange: (members: readonly MemberInfo[]) => void): Promise<void> {
    onChange(this.#members);
    this.#replayed = true;
    return Promise.resolve();
  }

  stop(): Promise<void> {
    return Promise.resolve();
  }
}
