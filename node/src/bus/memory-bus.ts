import { ChatError, type BusMessage, type MemberHeartbeat, type PresenceRecord } from '@chat/shared';
import type { BusHandlers, ChatBus, PresenceUpdate } from './types.js';

/**
 * An in-process stand-in for Kafka: every bus connected to one hub sees every message (like the seed
 * design's one consumer group per node), and the hub keeps the latest presence and member records like a
 * compacted topic, replayed to a bus when it starts. Delivery is asynchronous, as over a real bus.
 */
export class MemoryBusHub {
  readonly #buses = new Set<MemoryBus>();
  readonly presence = new Map<string, { nodeId: string; userId: string; record: PresenceRecord }>();
  readonly members = new Map<string, MemberHeartbeat>();
  /** When false, every publish fails as if Kafka were down (for tests of the failure path). */
  available = true;
  /** Counts what was published, by kind. */
  readonly published = { message: 0, presence: 0, heartbeat: 0 };

  connect(nodeId: string): MemoryBus {
    return new MemoryBus(this, nodeId);
  }

  /** @internal */
  attach(bus: MemoryBus): void {
    this.#buses.add(bus);
  }

  /** @internal */
  detach(bus: MemoryBus): void {
    this.#buses.delete(bus);
  }

  /** @internal */
  broadcast(deliver: (handlers: BusHandlers) => void): void {
    for (const bus of this.#buses) {
      const handlers = bus.handlers;
      if (handlers) queueMicrotask(() => deliver(handlers));
    }
  }

  /** @internal */
  check(): void {
    if (!this.available) throw new ChatError('KAFKA_ERR_UNAVAILABLE', 'in-process bus marked unavailable');
  }
}

export class MemoryBus implements ChatBus {
  readonly kind = 'memory';
  readonly #hub: MemoryBusHub;
  readonly #nodeId: string;
  handlers: BusHandlers | undefined;

  constructor(hub: MemoryBusHub, nodeId: string) {
    this.#hub = hub;
    this.#nodeId = nodeId;
  }

  start(handlers: BusHandlers): Promise<void> {
    this.handlers = handlers;
    for (const [id, hb] of this.#hub.members) handlers.onMember(id, hb);
    for (const { nodeId, userId, record } of this.#hub.presence.values())
      handlers.onPresence(nodeId, userId, record);
    this.#hub.attach(this);
    handlers.onReadyChange(true);
    return Promise.resolve();
  }

  publishMessage(message: BusMessage): Promise<void> {
    return this.#publish(() => {
      this.#hub.published.message++;
      this.#hub.broadcast((h) => h.onMessage(message));
    });
  }

  publishPresence(updates: readonly PresenceUpdate[]): Promise<void> {
    return this.#publish(() => {
      for (const { userId, record } of updates) {
        const key = `${this.#nodeId}/${userId}`;
        if (record) this.#hub.presence.set(key, { nodeId: this.#nodeId, userId, record });
        else this.#hub.presence.delete(key);
        this.#hub.published.presence++;
        this.#hub.broadcast((h) => h.onPresence(this.#nodeId, userId, record));
      }
    });
  }

  publishHeartbeat(heartbeat: MemberHeartbeat | null): Promise<void> {
    return this.#publish(() => {
      if (heartbeat) this.#hub.members.set(this.#nodeId, heartbeat);
      else this.#hub.members.delete(this.#nodeId);
      this.#hub.published.heartbeat++;
      this.#hub.broadcast((h) => h.onMember(this.#nodeId, heartbeat));
    });
  }

  async #publish(action: () => void): Promise<void> {
    await Promise.resolve();
    this.#hub.check();
    action();
  }

  isReady(): boolean {
    return this.handlers !== undefined && this.#hub.available;
  }

  stop(): Promise<void> {
    this.#hub.detach(this);
    this.handlers = undefined;
    return Promise.resolve();
  }
}
