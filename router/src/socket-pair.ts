import type { Socket } from 'node:net';

/** Why a pair ended, as the router counts it. */
export type PairEnd = 'client' | 'upstream' | 'router' | 'stalled';

export interface SocketPairOptions {
  /**
   * A side that has not taken the bytes queued for it (its socket's write queue full, the other side no
   * longer read) for this long gets the pair destroyed, both sockets (default 30,000 ms).
   */
  readonly stallTimeoutMs: number;
  /** After one side closed, the other is ended at once and destroyed after this long (default 5000 ms). */
  readonly halfCloseGraceMs: number;
  /** Called once, when the pair is over (both sockets closed or being destroyed). */
  readonly onEnd: (pair: SocketPair, endedBy: PairEnd) => void;
}

const PAIR = Symbol('pair');
type Paired = Socket & { [PAIR]?: SocketPair };

/*
 * The listeners are module-level functions shared by every pair (`this` is the socket, the pair hangs
 * off it), so an idle pair costs its two sockets and this one small object: no closures, no request or
 * response objects of the handshake (what `pipe()` and http-proxy-3 kept per connection, ~19 KiB).
 */
function onData(this: Paired, chunk: Buffer): void {
  const pair = this[PAIR];
  if (!pair) return;
  const peer = pair.peerOf(this);
  // Backpressure: what is queued toward a side is at most its write buffer's high-water mark plus one
  // read, because the other side is not read again until it drained.
  if (!peer.write(chunk)) {
    this.pause();
    pair.stalled(peer);
  }
}

function onDrain(this: Paired): void {
  const pair = this[PAIR];
  if (!pair) return;
  pair.drained(this);
  const source = pair.peerOf(this);
  if (!source.destroyed) source.resume();
}

function onEnd(this: Paired): void {
  // The peer gets the FIN after what is queued for it; a side that never reads it is destroyed later.
  const pair = this[PAIR];
  pair?.peerOf(this).end();
}

function onClose(this: Paired): void {
  this[PAIR]?.closed(this);
}

function onError(): void {
  // 'close' follows every error; the pair ends there.
}

/**
 * The two sockets of one proxied WebSocket after the node's 101, forwarded byte for byte both ways with
 * backpressure. Bounds: a side that does not read holds at most its socket's write buffer (the other side
 * is paused), for at most `stallTimeoutMs`, after which the pair is destroyed; when one side closes, the
 * other is ended and destroyed `halfCloseGraceMs` later even with bytes still queued (a half-dead pair).
 */
export class SocketPair {
  /** The connection id it carries. */
  readonly id: string;
  readonly client: Socket;
  readonly upstream: Socket;
  readonly #o: SocketPairOptions;
  #stallTimer: NodeJS.Timeout | undefined;
  #stalledSide: Socket | undefined;
  #endedBy: PairEnd | undefined;
  #over = false;

  /** `options` may be shared by every pair (it is only read). */
  constructor(id: string, client: Socket, upstream: Socket, options: SocketPairOptions) {
    this.id = id;
    this.client = client;
    this.upstream = upstream;
    this.#o = options;
    for (const socket of [client, upstream] as Paired[]) {
      socket[PAIR] = this;
      socket.setTimeout(0);
      socket.setNoDelay(true);
      socket.on('error', onError);
      socket.on('data', onData);
      socket.on('drain', onDrain);
      socket.on('end', onEnd);
      socket.once('close', onClose);
    }
    client.resume();
    upstream.resume();
  }

  /** The other socket of the pair. */
  peerOf(socket: Socket): Socket {
    return socket === this.client ? this.upstream : this.client;
  }

  /** `side`'s write queue is full: it has `stallTimeoutMs` to take it. */
  stalled(side: Socket): void {
    if (this.#stallTimer || this.#over) return;
    this.#stalledSide = side;
    this.#stallTimer = setTimeout(() => {
      this.#stallTimer = undefined;
      if (side.writableLength === 0) return;
      this.#endedBy = 'stalled';
      this.destroy();
    }, this.#o.stallTimeoutMs);
    this.#stallTimer.unref();
  }

  /** `side` took what was queued for it. */
  drained(side: Socket | undefined): void {
    if (side !== undefined && side !== this.#stalledSide) return;
    clearTimeout(this.#stallTimer);
    this.#stallTimer = undefined;
    this.#stalledSide = undefined;
  }

  /** One socket closed: the other is ended (bytes in flight, a close frame, still reach it), then cut. */
  closed(socket: Socket): void {
    this.#endedBy ??= socket === this.client ? 'client' : 'upstream';
    this.#finish();
    const peer = this.peerOf(socket);
    if (peer.destroyed) return;
    peer.end();
    setTimeout(() => peer.destroy(), this.#o.halfCloseGraceMs).unref();
  }

  /** Destroys both sockets (the router cuts the connection). */
  destroy(): void {
    this.#endedBy ??= 'router';
    this.client.destroy();
    this.upstream.destroy();
    this.#finish();
  }

  #finish(): void {
    if (this.#over) return;
    this.#over = true;
    this.drained(undefined);
    this.#o.onEnd(this, this.#endedBy ?? 'router');
  }
}
