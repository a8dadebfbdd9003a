import {
  errorFrame,
  shardOf,
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
import type { ChatBus, MessagePosition } from './bus/types.js';
import type { Connection } from './connection.js';
import type { DeliveredIds } from './delivered-ids.js';
import type { Handoff } from './handoff.js';
import type { NodeMetrics } from './metrics.js';
import { OutboundMessage } from './outbound-message.js';
import type { PresenceDirectory } from './presence-directory.js';
import type { SessionRegistry } from './session-registry.js';
import type { ShardOwnership } from './shard-ownership.js';

export interface DeliveryDeps {
  readonly nodeId: string;
  readonly sessions: SessionRegistry;
  readonly directory: PresenceDirectory;
  readonly bus: ChatBus;
  /** Who owns which shard, as this node sees it. */
  readonly ownership: Pick<ShardOwnership, 'owns'>;
  /** The cluster's shard count. */
  readonly shards: number;
  readonly metrics: NodeMetrics;
  readonly logger: Logger;
  /** Holds records of this node's shards for receivers who are not here yet (reconnecting). */
  readonly handoff: Handoff;
  /** Which ids were written to which receiver recently: none is written to the same receiver twice. */
  readonly delivered: DeliveredIds;
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
 * The sessions a message can be written to now: a session that is closing (a drain, a migration, a limit
 * cut, waiting for the client's close frame) is still registered but takes no more writes, so it does not
 * count as the receiver being here; the message then takes the shard path and is held for their next one.
 */
function writable(sessions: ReadonlySet<Connection>): ReadonlySet<Connection> {
  for (const c of sessions) if (!c.isOpen) return new Set([...sessions].filter((x) => x.isOpen));
  return sessions;
}
const MAX_ECHO = 100_000;

/**
 * The data path. A send is written at once to every session of the receiver on this node (no Kafka);
 * if the presence directory says the receiver is also on other live nodes, or was recently (left,
 * reconnecting, or their node died within the presence grace period), it is produced once to the
 * receiver's shard, keyed by the receiver, and the shard's owner delivers it to their sessions, or holds
 * it until they arrive (handoff). The sender always gets an answer: `delivered`, `accepted`, `offline`
 * (only when the receiver is nowhere and was not recently, as far as a trustworthy directory knows), or
 * a retryable error when the bus would not take it or presence is unknown. A server message id is never
 * written twice to the same receiver within the dedup window (`delivered`). Writes go through each
 * receiver's `Connection`, which encodes for its flavor and cuts slow readers.
 */
export class Delivery {
  readonly #d: DeliveryDeps;
  readonly #now: () => number;
  readonly #log: Logger;
  /** Ids of messages delivered here at send time and published to a shard this node reads. */
  readonly #echo = new Set<string>();

  constructor(deps: DeliveryDeps) {
    this.#d = deps;
    this.#now = deps.now ?? Date.now;
    this.#log = deps.logger.child({ subsystem: 'delivery' });
  }

  /**
   * Delivers a send from `sender` and returns the ack or error frame to answer it with. `id` is the
   * server message id (a new one unless the caller derived it, e.g. from a retried `cid`).
   */
  async send(
    sender: Connection,
    out: Outgoing,
    id: string = this.#d.newId(),
  ): Promise<AckFrame | ErrorFrame> {
    const { nodeId, sessions, directory, bus, metrics } = this.#d;
    const started = performance.now();
    const ts = this.#now();
    const cid =
      out.kind === 'send' ? out.frame.cid : typeof out.frame.cid === 'string' ? out.frame.cid : undefined;
    const to = out.kind === 'send' ? out.frame.to : out.frame.receiver_id;
    const frame: MessageFrame | LegacyDirectMessage =
      out.kind === 'send'
        ? { type: 'message', id, from: sender.userId, to, body: out.frame.body, ts }
        : { ...out.frame, sender_id: sender.userId };

    const seed = this.#d.mode === 'seed';
    const local = seed ? EMPTY_SESSIONS : writable(sessions.sessionsOf(to));
    if (local.size > 0 && this.#first(to, id, 'local')) {
      this.#write(local, new OutboundMessage(frame), 'local');
      metrics.deliveryLatency.observe({ path: 'local' }, (performance.now() - started) / 1000);
    }

    // Where the receiver is: other live nodes (presence, with the shard each files them under), or the
    // last known shard while they reconnect. The seed design sends everything through the bus.
    const remote = seed ? [] : directory.remoteNodesOf(to, nodeId);
    const recent = seed ? undefined : directory.shardOf(to);
    let status: AckStatus;
    if (!seed && remote.length === 0 && (local.size > 0 || recent === undefined)) {
      // Nowhere, as far as this node knows: the truth only while its view of presence is complete.
      if (local.size === 0 && !bus.isReady()) {
        return errorFrame(
          'NODE_ERR_BUS_UNAVAILABLE',
          'presence is unknown (the bus is not ready): not sent',
          cid,
        );
      }
      status = local.size > 0 ? 'delivered' : 'offline';
    } else {
      // One record per shard the receiver is in (one, except while a user moves between nodes); each
      // shard's owner delivers it to its sessions.
      const fallback = recent ?? shardOf(to, this.#d.shards);
      const found = seed ? [] : directory.remoteShardsOf(to, nodeId);
      const shards = found.length > 0 ? found : [seed ? shardOf(to, this.#d.shards) : fallback];
      const message: BusMessage = { v: 1, id, origin: nodeId, from: sender.userId, to, ts, frame };
      // We read this shard ourselves: do not deliver again what we just wrote to the sessions here.
      if (local.size > 0 && shards.some((shard) => this.#d.ownership.owns(shard))) {
        this.#echo.add(id);
        // Bounded: an entry whose record is never read back (the shard moved meanwhile) ages out.
        if (this.#echo.size > MAX_ECHO) this.#echo.delete(this.#echo.values().next().value ?? '');
      }
      try {
        await Promise.all(shards.map((shard) => bus.publishMessage(message, shard)));
        status = 'accepted';
      } catch (err) {
        this.#echo.delete(id);
        if (!isChatError(err)) this.#log.error({ err }, 'unexpected publish failure');
        const here = local.size > 0 ? 'delivered to the receiver’s sessions on this node; ' : '';
        // Handed to Kafka and not confirmed: it may still be written and delivered, so say so (a retry
        // with the same cid is the client's way to find out). Otherwise it was never sent.
        if (isChatError(err) && err.code === 'KAFKA_ERR_TIMEOUT') {
          return errorFrame(
            'NODE_ERR_BUS_TIMEOUT',
            `${here}Kafka did not confirm in time: it may arrive`,
            cid,
          );
        }
        return errorFrame('NODE_ERR_BUS_UNAVAILABLE', `${here}the bus is unavailable: not sent`, cid);
      }
    }
    metrics.acks.inc({ status });
    const ack: AckFrame = { type: 'ack', id, status };
    if (cid !== undefined) ack.cid = cid;
    return ack;
  }

  /**
   * A message of a shard this node reads, at `position`: delivered to this node's sessions of its
   * receiver, unless this node wrote it to them already (when it accepted the send, or earlier within the
   * dedup window). A receiver with no session here is expected (reconnecting to this shard's owner): the
   * record is held for them (handoff). The seed design reads every shard and holds nothing.
   */
  fromBus(message: BusMessage, position: MessagePosition): void {
    if (message.origin === this.#d.nodeId && this.#echo.delete(message.id)) return;
    const local = writable(this.#d.sessions.sessionsOf(message.to));
    if (local.size === 0) {
      if (this.#d.mode === 'seed') return;
      if (this.#d.delivered.has(message.to, message.id)) {
        this.#d.metrics.duplicatesDropped.inc({ path: 'bus' });
        return;
      }
      if (this.#d.handoff.hold(message, position) === 'duplicate')
        this.#d.metrics.duplicatesDropped.inc({ path: 'handoff' });
      return;
    }
    if (!this.#first(message.to, message.id, 'bus')) return;
    this.#write(local, new OutboundMessage(message.frame), 'bus');
    this.#d.metrics.deliveryLatency.observe({ path: 'bus' }, Math.max(0, this.#now() - message.ts) / 1000);
  }

  /**
   * A session of `userId` registered on this node: what was held for them is written now to their open
   * sessions, oldest first (each id once).
   */
  arrived(userId: string): void {
    const local = writable(this.#d.sessions.sessionsOf(userId));
    if (local.size === 0) return;
    for (const message of this.#d.handoff.take(userId)) {
      if (this.#first(userId, message.id, 'handoff'))
        this.#write(local, new OutboundMessage(message.frame), 'bus');
    }
  }

  /** Records that `id` is written to `receiver` now; false (counted) when it already was. */
  #first(receiver: string, id: string, path: 'local' | 'bus' | 'handoff'): boolean {
    if (this.#d.delivered.first(receiver, id)) return true;
    this.#d.metrics.duplicatesDropped.inc({ path });
    return false;
  }

  #write(targets: ReadonlySet<Connection>, message: OutboundMessage, path: 'local' | 'bus'): void {
    for (const connection of targets) connection.deliver(message, path);
  }
}
