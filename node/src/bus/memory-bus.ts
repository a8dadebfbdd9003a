import { ChatError, type BusMessage, type MemberHeartbeat } from '@chat/shared';
import {
  decodeHeartbeat,
  decodeMessage,
  decodePresence,
  encodeHeartbeat,
  encodeMessage,
  encodePresence,
  type EncodedRecord,
} from './records.js';
import type { BusHandlers, ChatBus, PresenceUpdate } from './types.js';

function unavailable(message: string): ChatError {
  return new ChatError('KAFKA_ERR_UNAVAILABLE', message);
}

/**
 * An in-process stand-in for Kafka: every bus connected to one hub sees every message (like the seed
 * design's one consumer group per node), and the hub keeps the latest presence and member records like a
 * compacted topic, replayed to a bus when it starts. Records travel encoded and are validated on the way
 * in with the same code as Kafka's (records.ts); delivery is asynchronous, as over a real bus.
 */
export class MemoryBusHub {
  readonly #buses = new Set<MemoryBus>();
  /** Latest presence records by presence key (`presenceKey(nodeId, userId)`), encoded: the compacted topic. */
  readonly presence = new Map<string, string>();
  /** Latest heartbeats by node id, encoded. */
  readonly members = new Map<string, string>();
  #available = true;
  /** Counts what was published, by kind. */
  readonly published = { message: 0, presence: 0, heartbeat: 0 };
  /** Records a bus skipped because they did not validate (Kafka counts them in a metric). */
  invalidRecords = 0;
  /** Records whose handler threw (counted, then the next record is delivered as usual). */
  handlerErrors = 0;

  /** When false, every publish fails as if Kafka were down and the buses report not ready. */
  get available(): boolean {
    return this.#available;
  }

  set available(value: boolean) {
    this.#available = value;
    for (const bus of this.#buses) bus.updateReady();
  }

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

  /** @internal Queues `record` for every attached bus, in order. */
  broadcast(kind: 'message' | 'presence' | 'heartbeat', record: EncodedRecord): void {
    for (const bus of this.#buses) queueMicrotask(() => bus.receive(kind, record));
  }
}

export class MemoryBus implements ChatBus {
  readonly kind = 'memory';
  readonly #hub: MemoryBusHub;
  readonly #nodeId: string;
  #handlers: BusHandlers | undefined;
  #ready = false;

  constructor(hub: MemoryBusHub, nodeId: string) {
    this.#hub = hub;
    this.#nodeId = nodeId;
  }

  start(handlers: BusHandlers): Promise<void> {
    this.#handlers = handlers;
    for (const [key, value] of this.#hub.members) this.receive('heartbeat', { key, value });
    for (const [key, value] of this.#hub.presence) this.receive('presence', { key, value });
    this.#hub.attach(this);
    this.updateReady();
    return Promise.resolve();
  }

  /**
   * @internal One record arrives from the hub: validated like Kafka's, then handed to the node. A record
   * that does not decode is skipped and counted; a handler that throws is counted apart (a bug in the
   * node, not a bad record) and the next record is still delivered.
   */
  receive(kind: 'message' | 'presence' | 'heartbeat', { key, value }: EncodedRecord): void {
    const handlers = this.#handlers;
    if (!handlers) return;
    let deliver: () => void;
    try {
      if (kind === 'message') {
        const message = decodeMessage(value);
        deliver = () => handlers.onMessage(message);
      } else if (kind === 'heartbeat') {
        const { id, heartbeat } = decodeHeartbeat(key, value);
        deliver = () => handlers.onMember(id, heartbeat);
      } else {
        const { nodeId, userId, record } = decodePresence(key, value);
        deliver = () => handlers.onPresence(nodeId, userId, record);
      }
    } catch {
      this.#hub.invalidRecords++;
      return;
    }
    try {
      deliver();
    } catch {
      this.#hub.handlerErrors++;
    }
  }

  /** @internal Reports a change of readiness (started, stopped, hub availability). */
  updateReady(): void {
    const ready = this.#handlers !== undefined && this.#hub.available;
    if (ready === this.#ready) return;
    this.#ready = ready;
    this.#handlers?.onReadyChange(ready);
  }

  publishMessage(message: BusMessage): Promise<void> {
    return this.#publish(() => {
      this.#hub.published.message++;
      this.#hub.broadcast('message', encodeMessage(message));
    });
  }

  publishPresence(updates: readonly PresenceUpdate[]): Promise<void> {
    return this.#publish(() => {
      for (const { userId, record } of updates) {
        const encoded = encodePresence(this.#nodeId, userId, record);
        if (encoded.value === null) this.#hub.presence.delete(encoded.key);
        else this.#hub.presence.set(encoded.key, encoded.value);
        this.#hub.published.presence++;
        this.#hub.broadcast('presence', encoded);
      }
    });
  }

  publishHeartbeat(heartbeat: MemberHeartbeat | null): Promise<void> {
    return this.#publish(() => {
      const encoded = encodeHeartbeat(this.#nodeId, heartbeat);
      if (encoded.value === null) this.#hub.members.delete(encoded.key);
      else this.#hub.members.set(encoded.key, encoded.value);
      this.#hub.published.heartbeat++;
      this.#hub.broadcast('heartbeat', encoded);
    });
  }

  async #publish(action: () => void): Promise<void> {
    // Taken or refused when called, like Kafka's batcher: a publish in flight when stop() begins is
    // still carried out.
    const started = this.#handlers !== undefined;
    await Promise.resolve();
    if (!started) throw unavailable('in-process bus not started or stopped');
    if (!this.#hub.available) {
      this.updateReady();
      throw unavailable('in-process bus marked unavailable');
    }
    action();
  }

  isReady(): boolean {
    return this.#ready;
  }

  stop(): Promise<void> {
    this.#hub.detach(this);
    const handlers = this.#handlers;
    this.#handlers = undefined;
    if (this.#ready) {
      this.#ready = false;
      handlers?.onReadyChange(false);
    }
    return Promise.resolve();
  }
}
