import {
  errorFrame,
  isChatError,
  type AckFrame,
  type AckStatus,
  type BusMessage,
  type ErrorFrame,
  type LegacyDirectMessage,
  type Logger,
  type MessageFrame,
  type SendFrame,
} from '@chat/shared';
import type { ChatBus } from './bus/types.js';
import type { Connection } from './connection.js';
import type { NodeMetrics } from './metrics.js';
import { OutboundMessage } from './outbound-message.js';
import type { PresenceDirectory } from './presence-directory.js';
import type { SessionRegistry } from './session-registry.js';

export interface DeliveryDeps {
  readonly nodeId: string;
  readonly sessions: SessionRegistry;
  readonly directory: PresenceDirectory;
  readonly bus: ChatBus;
  readonly metrics: NodeMetrics;
  readonly logger: Logger;
  /** Server message ids (unique per message). */
  readonly newId: () => string;
  readonly now?: () => number;
  /**
   * `local-first` (default): the data path described above. `seed`: the design this project replaces,
   * kept for comparison benchmarks: every message goes through the bus and every node (the origin too)
   * delivers what it reads.
   */
  readonly mode?: 'local-first' | 'seed';
}

/** A send as decoded: v1 `send` or a seed-format direct message. */
export type Outgoing =
  | { readonly kind: 'send'; readonly frame: SendFrame }
  | { readonly kind: 'legacy'; readonly frame: LegacyDirectMessage };

const EMPTY_SESSIONS: ReadonlySet<Connection> = new Set();

/**
 * The data path. A send is written at once to every session of the receiver on this node (no Kafka);
 * if the presence directory says the receiver is also on other live nodes, it is produced once to the
 * bus, keyed by the receiver, and those nodes deliver it to their sessions. The sender always gets an
 * answer: `delivered`, `accepted`, `offline`, or a retryable error when the bus would not take it.
 * Writes go through each receiver's `Connection`, which encodes for its flavor and cuts slow readers.
 */
export class Delivery {
  readonly #d: DeliveryDeps;
  readonly #now: () => number;
  readonly #log: Logger;

  constructor(deps: DeliveryDeps) {
    this.#d = deps;
    this.#now = deps.now ?? Date.now;
    this.#log = deps.logger.child({ subsystem: 'delivery' });
  }

  /** Delivers a send from `sender` and returns the ack or error frame to answer it with. */
  async send(sender: Connection, out: Outgoing): Promise<AckFrame | ErrorFrame> {
    const { nodeId, sessions, directory, bus, metrics } = this.#d;
    const started = performance.now();
    const id = this.#d.newId();
    const ts = this.#now();
    const cid =
      out.kind === 'send' ? out.frame.cid : typeof out.frame.cid === 'string' ? out.frame.cid : undefined;
    const to = out.kind === 'send' ? out.frame.to : out.frame.receiver_id;
    const frame: MessageFrame | LegacyDirectMessage =
      out.kind === 'send'
        ? { type: 'message', id, from: sender.userId, to, body: out.frame.body, ts }
        : { ...out.frame, sender_id: sender.userId };

    const seed = this.#d.mode === 'seed';
    const local = seed ? EMPTY_SESSIONS : sessions.sessionsOf(to);
    if (local.size > 0) {
      this.#write(local, new OutboundMessage(frame), 'local');
      metrics.deliveryLatency.observe({ path: 'local' }, (performance.now() - started) / 1000);
    }

    const remote = seed ? [nodeId] : directory.remoteNodesOf(to, nodeId);
    let status: AckStatus;
    if (remote.length === 0) {
      status = local.size > 0 ? 'delivered' : 'offline';
    } else {
      const message: BusMessage = { v: 1, id, origin: nodeId, from: sender.userId, to, ts, frame };
      try {
        await bus.publishMessage(message);
        status = 'accepted';
      } catch (err) {
        if (!isChatError(err)) this.#log.error({ err }, 'unexpected publish failure');
        return errorFrame(
          'NODE_ERR_BUS_UNAVAILABLE',
          local.size > 0
            ? 'delivered to the receiver’s sessions on this node only; the bus is unavailable'
            : 'the bus is unavailable',
          cid,
        );
      }
    }
    metrics.acks.inc({ status });
    const ack: AckFrame = { type: 'ack', id, status };
    if (cid !== undefined) ack.cid = cid;
    return ack;
  }

  /** A message read from the bus: delivered to this node's sessions of its receiver, unless it is ours. */
  fromBus(message: BusMessage): void {
    // The origin node wrote to its own sessions when it accepted the send.
    if (message.origin === this.#d.nodeId && this.#d.mode !== 'seed') return;
    const local = this.#d.sessions.sessionsOf(message.to);
    if (local.size === 0) return;
    this.#write(local, new OutboundMessage(message.frame), 'bus');
    this.#d.metrics.deliveryLatency.observe({ path: 'bus' }, Math.max(0, this.#now() - message.ts) / 1000);
  }

  #write(targets: ReadonlySet<Connection>, message: OutboundMessage, path: 'local' | 'bus'): void {
    for (const connection of targets) connection.deliver(message, path);
  }
}
