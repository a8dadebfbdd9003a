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
