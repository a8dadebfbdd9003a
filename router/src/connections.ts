import type { Socket } from 'node:net';

/** One proxied WebSocket: the client's socket and the node's, and why it is on that node (its shard). */
export interface ProxiedConnection {
  readonly id: string;
  /** The affinity key it was placed by (token claim, allowed query parameter, or the user id). */
  readonly key: string;
  /** `shardOf(key, shardCount)`: the shard whose owner it was placed on. */
  readonly shard: number;
  readonly nodeId: string;
  readonly client: Socket;
  readonly upstream: Socket;
  /** Set when the router asked the node to close it (migration), so its end is counted as ours. */
  migrating: boolean;
}

/** The connections this router proxies right now. */
export class ConnectionTable {
  readonly #byId = new Map<string, ProxiedConnection>();

  add(connection: ProxiedConnection): void {
    this.#byId.set(connection.id, connection);
  }

  delete(id: string): boolean {
    return this.#byId.delete(id);
  }

  get(id: string): ProxiedConnection | undefined {
    return this.#byId.get(id);
  }

  all(): ProxiedConnection[] {
    return [...this.#byId.values()];
  }

  get size(): number {
    return this.#byId.size;
  }
}
