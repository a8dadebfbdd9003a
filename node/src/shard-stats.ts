/**
 * Messages this node handled per shard since it started: a plain counter per shard, so the cost on the
 * message path is one array increment. What is counted: each send from a session on the shard (its
 * affinity key's shard), and each record read from the shard's log (not the read-back window of durable
 * mode, which its previous owner handled already). The counts only grow: operators (`chatctl shards`,
 * through the router's `GET /shards?messages=1`) take a rate from two samples, so the node keeps no timer.
 */
export class ShardStats {
  readonly #messages: number[];

  constructor(shardCount: number) {
    this.#messages = new Array<number>(shardCount).fill(0);
  }

  /** One message on `shard`; a shard outside the table is ignored (it cannot be asked about). */
  count(shard: number): void {
    if (shard >= 0 && shard < this.#messages.length) this.#messages[shard] = (this.#messages[shard] ?? 0) + 1;
  }

  /** The cumulative counts, one per shard (a copy). */
  snapshot(): number[] {
    return [...this.#messages];
  }
}
