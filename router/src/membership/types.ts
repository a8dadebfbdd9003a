import type { MemberState } from '@chat/shared';

/** A node as a membership source describes it. */
export interface MemberInfo {
  readonly id: string;
  /** Base URL (http://host:port) the router proxies to and probes. */
  readonly url: string;
  readonly weight: number;
  readonly state: MemberState;
}

/** Where the router learns which nodes exist: a static list, or the nodes' heartbeats on Kafka. */
export interface MembershipSource {
  readonly kind: 'static' | 'kafka';
  /**
   * True once the source has given its whole view as of start-up (a static list at once; the members
   * topic replayed to the end it had when the router started): before that, a member list is partial.
   */
  readonly replayed: boolean;
  /** Starts; `onChange` receives the whole current member list whenever it changes. */
  start(onChange: (members: readonly MemberInfo[]) => void): Promise<void>;
  stop(): Promise<void>;
}
