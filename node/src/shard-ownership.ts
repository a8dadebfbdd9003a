import { OwnerTable, type Logger } from '@chat/shared';
import type { MessageBus } from './bus/types.js';
import type { NodeMetrics } from './metrics.js';
import type { PresenceDirectory } from './presence-directory.js';

export interface ShardOwnershipOptions {
  readonly nodeId: string;
  /** The cluster's shard count. */
  readonly shards: number;
  readonly directory: PresenceDirectory;
  readonly bus: Pick<MessageBus, 'assignShards'>;
  /** `seed`: every node reads every shard (the design this project replaces, for benchmarks). */
  readonly mode: 'local-first' | 'durable' | 'seed';
  readonly metrics: NodeMetrics;
  readonly logger: Logger;
}

/**
 * This node's view of who owns which shard: the owner table over the members whose heartbeats are fresh
 * and who are active, the same input every router uses. When the table changes, the bus is told which
 * shards to read (it releases the others and takes the new ones over).
 */
export class ShardOwnership {
  readonly #o: ShardOwnershipOptions;
  readonly #log: Logger;
  #table: OwnerTable;
  #members = '';

  constructor(options: ShardOwnershipOptions) {
    this.#o = options;
    this.#log = options.logger.child({ subsystem: 'shards' });
    this.#table = new OwnerTable([], options.shards);
  }

  get table(): OwnerTable {
    return this.#table;
  }

  /** Whether this node owns `shard` now. */
  owns(shard: number): boolean {
    return this.#table.ownerOf(shard) === this.#o.nodeId;
  }

  /** Recomputes the table from the directory (after a heartbeat, and on a timer for expiries). */
  refresh(): void {
    const members = this.#o.directory
      .liveMembers()
      .filter((m) => m.state === 'active')
      .map((m) => ({ id: m.id, weight: m.weight }))
      .sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
    const digest = JSON.stringify(members);
    if (digest === this.#members) return;
    this.#members = digest;
    const before = this.#table;
    this.#table = new OwnerTable(members, this.#o.shards);
    const mine = this.#table.shardsOf(this.#o.nodeId);
    this.#o.metrics.shardsOwned.set(this.#o.mode === 'seed' ? this.#o.shards : mine.length);
    this.#log.info(
      {
        version: this.#table.version,
        members: members.map((m) => m.id),
        owned: mine.length,
        moved: before.size === 0 ? undefined : before.movedTo(this.#table).length,
      },
      'owner table changed',
    );
    this.#o.bus.assignShards(this.#o.mode === 'seed' ? 'all' : new Set(mine));
  }
}
