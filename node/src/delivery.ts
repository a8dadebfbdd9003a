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
  type MessagePos,
  type ResumeFailure,
  type SendFrame,
} from '@chat/shared';
import type { ChatBus, MessagePosition } from './bus/types.js';
import type { Connection } from './connection.js';
import type { DeliveredIds } from './delivered-ids.js';
import type { Handoff } from './handoff.js';
import type { NodeMetrics } from './metrics.js';
import { OutboundMessage } from './outbound-message.js';
import type { PresenceDirectory } from './presence-directory.js';
import type { RecoveryBuffer } from './recovery-buffer.js';
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
   * delivers what it reads. `durable`: every send, local too, goes to the receiver's shard log before it
   * is acked `accepted`; the shard's owner writes it from the log with its position, keeps recent
   * records (`recovery`) and replays a resuming client's gap.
   */
  readonly mode?: 'local-first' | 'durable' | 'seed';
  /** Durable mode: the recent records of the shards this node reads (required in durable mode). */
  readonly recovery?: RecoveryBuffer;
  /** Durable mode: how long a resume waits for its shard to be read here (default 15 s). */
  readonly recoveryWaitMs?: number;
}

/** A resume position as the client named it (`since`), or `invalid` when it did not parse. */
export type Since = MessagePos | 'invalid';

/** Durable mode, per session: the last offset written to it per shard, and its resume's state. */
interface SessionLog {
  readonly written: Map<number, number>;
  /** Named a position that was recovered: records read back (backfill) after it are written to it too. */
  resumed: boolean;
  /** Its resume waits for its shard (takeover): nothing is written to it meanwhile. */
  parked: boolean;
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
  readonly #sessionLogs = new WeakMap<Connection, SessionLog>();
  /** Durable mode: resumes waiting for their shard to be read here, by shard. */
  readonly #parked = new Map<number, Map<Connection, { since: MessagePos; timer: NodeJS.Timeout }>>();
  /** Durable mode: shards taken whose read-back window has not reached their start yet. */
  readonly #backfilling = new Map<number, number>();

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

    if (this.#d.mode === 'durable') {
      const message: BusMessage = { v: 1, id, origin: nodeId, from: sender.userId, to, ts, frame };
      return this.#sendDurable(message, cid);
    }
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
        const here = local.size > 0 ? 'delivered to the receiver’s sessions on this node; ' : '';
        return this.#publishError(err, here, cid);
      }
    }
    metrics.acks.inc({ status });
    const ack: AckFrame = { type: 'ack', id, status };
    if (cid !== undefined) ack.cid = cid;
    return ack;
  }

  /** The error frame for a publish that failed. */
  #publishError(err: unknown, here: string, cid: string | undefined): ErrorFrame {
    if (!isChatError(err)) this.#log.error({ err }, 'unexpected publish failure');
    // Handed to Kafka and not confirmed: it may still be written and delivered, so say so (a retry
    // with the same cid is the client's way to find out). Otherwise it was never sent.
    if (isChatError(err) && err.code === 'KAFKA_ERR_TIMEOUT') {
      return errorFrame('NODE_ERR_BUS_TIMEOUT', `${here}Kafka did not confirm in time: it may arrive`, cid);
    }
    return errorFrame('NODE_ERR_BUS_UNAVAILABLE', `${here}the bus is unavailable: not sent`, cid);
  }

  /**
   * Durable mode: the message goes to the receiver's shard log (every shard they are filed under: their
   * sessions here, other nodes' presence, the last known one, else their key's shard), local receivers
   * too, and is acked `accepted` once Kafka confirmed it (acks=all). The shard's owner writes it from the
   * log, with its position.
   */
  async #sendDurable(message: BusMessage, cid: string | undefined): Promise<AckFrame | ErrorFrame> {
    const { sessions, directory, bus, metrics, nodeId } = this.#d;
    const shards = new Set<number>();
    for (const c of sessions.sessionsOf(message.to)) shards.add(c.shard);
    for (const shard of directory.remoteShardsOf(message.to, nodeId)) shards.add(shard);
    if (shards.size === 0) shards.add(directory.shardOf(message.to) ?? shardOf(message.to, this.#d.shards));
    try {
      await Promise.all([...shards].map((shard) => bus.publishMessage(message, shard)));
    } catch (err) {
      return this.#publishError(err, '', cid);
    }
    metrics.acks.inc({ status: 'accepted' });
    const ack: AckFrame = { type: 'ack', id: message.id, status: 'accepted' };
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
    if (this.#d.mode === 'durable') return this.#fromLog(message, position);
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
  arrived(userId: string, conn?: Connection, since?: Since): void {
    if (conn && since !== undefined) {
      if (this.#d.mode !== 'durable') this.#answerResume(conn, 'not_durable');
      else if (this.#resume(conn, since) === 'parked') return;
    }
    this.#deliverHeld(userId);
  }

  /** What was held for `userId` is written to their sessions that take writes (each id once). */
  #deliverHeld(userId: string): void {
    const durable = this.#d.mode === 'durable';
    const local = [...writable(this.#d.sessions.sessionsOf(userId))].filter(
      (c) => !this.#sessionLogs.get(c)?.parked,
    );
    if (local.length === 0) return;
    for (const { message, position } of this.#d.handoff.takeHeld(userId)) {
      if (!this.#first(userId, message.id, 'handoff')) continue;
      if (!durable) {
        this.#write(new Set(local), new OutboundMessage(message.frame), 'bus');
        continue;
      }
      const out = this.#positioned(message, position);
      for (const c of local) if (this.#behind(c, position)) this.#writeAt(c, out, position);
    }
  }

  /**
   * Durable mode: a record of a shard this node reads. Kept in the recovery buffer first; a record read
   * back before the shard's start (backfill) is written only to resumed sessions behind it (its previous
   * owner delivered it); any other is written, with its position, to the receiver's sessions that are
   * not waiting for their resume, once per session (never at or before an offset it already got), or
   * held for them (handoff).
   */
  #fromLog(message: BusMessage, position: MessagePosition): void {
    const { recovery, sessions, metrics } = this.#d;
    recovery?.add(message, position);
    if (recovery) metrics.recoveryBuffered.set(recovery.size);
    if (position.backfill) {
      let out: OutboundMessage | undefined;
      for (const c of sessions.sessionsOf(message.to)) {
        const log = this.#sessionLogs.get(c);
        if (!log?.resumed || log.parked || !c.isOpen || !this.#behind(c, position)) continue;
        this.#writeAt(c, (out ??= this.#positioned(message, position)), position);
        metrics.resumeReplayed.inc();
      }
      this.#backfillProgress(position.shard);
      return;
    }
    this.#backfillProgress(position.shard);
    const live = [...writable(sessions.sessionsOf(message.to))].filter(
      (c) => !this.#sessionLogs.get(c)?.parked,
    );
    if (live.length === 0) {
      if (this.#d.delivered.has(message.to, message.id)) {
        metrics.duplicatesDropped.inc({ path: 'bus' });
        return;
      }
      if (this.#d.handoff.hold(message, position) === 'duplicate')
        metrics.duplicatesDropped.inc({ path: 'handoff' });
      return;
    }
    if (!this.#first(message.to, message.id, 'bus')) return;
    const out = this.#positioned(message, position);
    for (const c of live) if (this.#behind(c, position)) this.#writeAt(c, out, position);
    metrics.deliveryLatency.observe({ path: 'bus' }, Math.max(0, this.#now() - message.ts) / 1000);
  }

  /**
   * Durable mode: this node starts reading `shard` at `from` (records before `start` are read back for
   * the recovery buffer). Resumes waiting for the shard are served once the read-back reached `start`.
   */
  shardTaken(shard: number, from: number, start: number): void {
    if (this.#d.mode !== 'durable') return;
    this.#d.recovery?.open(shard, from);
    if (from < start) this.#backfilling.set(shard, start);
    else this.#serveParked(shard);
  }

  /** This node stopped reading `shard`: its recent records go. */
  shardReleased(shard: number): void {
    this.#backfilling.delete(shard);
    this.#d.recovery?.release(shard);
    if (this.#d.recovery) this.#d.metrics.recoveryBuffered.set(this.#d.recovery.size);
  }

  /** Drops what is past the recovery buffer's age limit (called now and then). */
  sweep(): void {
    const { recovery } = this.#d;
    if (!recovery) return;
    recovery.sweep();
    this.#d.metrics.recoveryBuffered.set(recovery.size);
  }

  #backfillProgress(shard: number): void {
    const start = this.#backfilling.get(shard);
    if (start === undefined || (this.#d.recovery?.nextOf(shard) ?? start) < start) return;
    this.#backfilling.delete(shard);
    this.#serveParked(shard);
  }

  /**
   * A session named a resume position: served now when this node reads its shard (the gap written, then
   * `resumed`), else it waits (`parked`) for the shard, at most `recoveryWaitMs`; nothing is written to
   * it meanwhile. A position that cannot apply (another log, another shard, malformed) is answered at once.
   */
  #resume(conn: Connection, since: Since): 'served' | 'parked' {
    const log = this.#logOf(conn);
    log.resumed = true;
    if (since === 'invalid') return this.#answerResume(conn, 'invalid');
    if (since.epoch !== this.#d.bus.logEpoch()) return this.#answerResume(conn, 'epoch');
    if (since.shard !== conn.shard) return this.#answerResume(conn, 'shard');
    const recovery = this.#d.recovery;
    if (recovery?.has(since.shard) && !this.#backfilling.has(since.shard)) {
      this.#serve(conn, since);
      return 'served';
    }
    log.parked = true;
    let waiting = this.#parked.get(since.shard);
    if (!waiting) {
      waiting = new Map<Connection, { since: MessagePos; timer: NodeJS.Timeout }>();
      this.#parked.set(since.shard, waiting);
    }
    const timer = setTimeout(() => {
      const mine = this.#parked.get(since.shard);
      if (!mine?.delete(conn)) return;
      if (mine.size === 0) this.#parked.delete(since.shard);
      log.parked = false;
      this.#answerResume(conn, 'not_owner');
      this.#deliverHeld(conn.userId);
    }, this.#d.recoveryWaitMs ?? 15_000);
    timer.unref();
    waiting.set(conn, { since, timer });
    return 'parked';
  }

  #serveParked(shard: number): void {
    const waiting = this.#parked.get(shard);
    if (!waiting) return;
    this.#parked.delete(shard);
    for (const [conn, { since, timer }] of waiting) {
      clearTimeout(timer);
      this.#logOf(conn).parked = false;
      this.#serve(conn, since);
      this.#deliverHeld(conn.userId);
    }
  }

  /** Writes the records to `conn`'s user after `since` (oldest first), then `resumed`; or `too_old`. */
  #serve(conn: Connection, since: MessagePos): void {
    const recovery = this.#d.recovery;
    if (recovery?.covers(since.shard, since.offset) !== 'covered')
      return void this.#answerResume(conn, 'too_old');
    const log = this.#logOf(conn);
    log.written.set(since.shard, Math.max(since.offset, log.written.get(since.shard) ?? -1));
    let replayed = 0;
    for (const { offset, message } of recovery.after(since.shard, conn.userId, since.offset)) {
      const position = { shard: since.shard, offset };
      if (!this.#behind(conn, position)) continue;
      this.#writeAt(conn, this.#positioned(message, position), position);
      replayed++;
    }
    this.#d.metrics.resumeReplayed.inc(replayed);
    this.#d.metrics.resumes.inc({ result: 'recovered' });
    conn.send({ type: 'resumed', recovered: true, replayed });
  }

  /** Answers a resume that cannot be served: live messages follow, the gap is not filled. */
  #answerResume(conn: Connection, reason: ResumeFailure): 'served' {
    const log = this.#sessionLogs.get(conn);
    if (log) log.resumed = false;
    this.#d.metrics.resumes.inc({ result: reason });
    conn.send({ type: 'resumed', recovered: false, replayed: 0, reason });
    return 'served';
  }

  #logOf(conn: Connection): SessionLog {
    let log = this.#sessionLogs.get(conn);
    if (!log) this.#sessionLogs.set(conn, (log = { written: new Map(), resumed: false, parked: false }));
    return log;
  }

  /** Whether `conn` has not been written anything of `position`'s shard at or after its offset. */
  #behind(conn: Connection, position: MessagePosition): boolean {
    return (this.#sessionLogs.get(conn)?.written.get(position.shard) ?? -1) < position.offset;
  }

  #writeAt(conn: Connection, out: OutboundMessage, position: MessagePosition): void {
    conn.deliver(out, 'bus');
    this.#logOf(conn).written.set(position.shard, position.offset);
  }

  /** The frame to write, with its position (v1 messages; a seed-format frame has no place for it). */
  #positioned(message: BusMessage, position: MessagePosition): OutboundMessage {
    const frame = message.frame;
    if (!('type' in frame) || frame.type !== 'message') return new OutboundMessage(frame);
    const pos: MessagePos = { shard: position.shard, offset: position.offset, epoch: this.#d.bus.logEpoch() };
    return new OutboundMessage({ ...frame, pos });
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
