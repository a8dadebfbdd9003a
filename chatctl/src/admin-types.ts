/**
 * The router admin API's answers as chatctl reads them (docs/router.md, router/src/admin-api.ts). Kept
 * here as plain types, not imported, so chatctl has no runtime dependency and installs anywhere.
 */

export interface MemberView {
  readonly id: string;
  readonly url: string;
  readonly weight: number;
  /** What the node's heartbeat says (or `active` for a static member). */
  readonly state: string;
  readonly healthy: boolean;
  readonly adminDrained: boolean;
  readonly draining: boolean;
  readonly probed: boolean;
  readonly reachable: boolean;
  readonly inRing: boolean;
  readonly shards: number;
  readonly connections: number;
  /** The node's own readiness from its /readyz (accepting and its bus works); absent from older routers. */
  readonly ready?: boolean;
  /** The node's bus (Kafka) works, from its /readyz; null before an answer; absent from older routers. */
  readonly bus?: boolean | null;
}

export interface MembersAnswer {
  readonly router?: { readonly ready: boolean; readonly settled: boolean; readonly reason?: string };
  readonly ownerTableVersion: string;
  readonly shards: number;
  readonly ringVersion: string;
  readonly ringSize: number;
  readonly members: readonly MemberView[];
}

export interface ShardView {
  readonly shard: number;
  readonly owner: string | null;
  readonly connections: number;
  readonly messages?: number;
}

export interface ShardsAnswer {
  readonly ownerTableVersion: string;
  readonly messagesFrom?: readonly string[];
  readonly unanswered?: readonly { readonly node: string; readonly error: string }[];
  readonly shards: readonly ShardView[];
}

export interface PlanSideAnswer {
  readonly version: string;
  readonly members: readonly { readonly id: string; readonly weight: number; readonly shards: number }[];
}

export interface PlanAnswer {
  readonly ownerTableVersion: string;
  readonly shards: number;
  readonly change: { readonly add: string; readonly weight: number } | { readonly remove: string };
  readonly before: PlanSideAnswer;
  readonly after: PlanSideAnswer;
  readonly moved: readonly {
    readonly shard: number;
    readonly from: string | null;
    readonly to: string | null;
    readonly connections: number;
  }[];
}

export interface UserAnswer {
  readonly user: string;
  readonly key: string;
  readonly shard: number;
  readonly owner: string | null;
  readonly ownerTableVersion: string;
  readonly sessions: readonly { readonly node: string; readonly sessions: number }[];
  readonly presence: readonly string[];
  readonly unanswered: readonly { readonly node: string; readonly error: string }[];
}

export interface KeyAnswer {
  readonly key: string;
  readonly shard: number;
  readonly owner: string | null;
  readonly ownerTableVersion: string;
}

export interface DrainAnswer {
  readonly id: string;
  readonly drained: boolean;
  readonly nodeTold: boolean;
  readonly ownerTableVersion: string;
}

/** An answer's body, as JSON gave it. */
export type Body = Record<string, unknown>;

const isBody = (v: unknown): v is Body => typeof v === 'object' && v !== null && !Array.isArray(v);
const isArrayOf = (v: unknown, item: (x: Body) => boolean): boolean =>
  Array.isArray(v) && v.every((x) => isBody(x) && item(x));
const str = (v: unknown) => typeof v === 'string';
const num = (v: unknown) => typeof v === 'number';
const planSide = (v: unknown) =>
  isBody(v) && str(v.version) && isArrayOf(v.members, (m) => str(m.id) && num(m.shards));

/**
 * What makes an answer the admin API's: the fields chatctl reads, checked before it trusts the rest.
 * Something else that answers JSON (a node, the router's public port, another service) fails them, and
 * chatctl says so (exit 3) instead of failing on a missing field.
 */
export const SHAPES = {
  members: (b: Body) =>
    str(b.ownerTableVersion) &&
    num(b.shards) &&
    isArrayOf(b.members, (m) => str(m.id) && num(m.shards) && num(m.connections) && num(m.weight)),
  shards: (b: Body) =>
    str(b.ownerTableVersion) && isArrayOf(b.shards, (s) => num(s.shard) && num(s.connections)),
  plan: (b: Body) =>
    num(b.shards) &&
    isBody(b.change) &&
    planSide(b.before) &&
    planSide(b.after) &&
    isArrayOf(b.moved, (m) => num(m.shard)),
  user: (b: Body) =>
    str(b.key) &&
    num(b.shard) &&
    isArrayOf(b.sessions, (x) => str(x.node)) &&
    Array.isArray(b.presence) &&
    Array.isArray(b.unanswered),
  key: (b: Body) => str(b.key) && num(b.shard) && str(b.ownerTableVersion),
  drain: (b: Body) => str(b.id) && typeof b.nodeTold === 'boolean',
} as const satisfies Record<string, (b: Body) => boolean>;
