// A client connection during its handshake, whoever accepted it: Node (a net.Socket) or the
// addon's front (native/splice.c), which keeps the socket out of JavaScript entirely. The proxy's
// protocol code works on this interface only; it reads bytes, answers, resets or forwards.

import type * as net from 'node:net';

import {
  type ByteEngine,
  type DialRelay,
  type DialTarget,
  EVENT_CONNECT,
  type RelayStats,
  type NativeAddon,
  MAX_DIAL_ADDRESSES,
  dialAndRelay,
  errnoName,
  nativeAddon,
} from './relay.js';

export interface ClientConn {
  /** Address and port the client connected to (the transparent path's key). */
  readonly localAddress: string;
  readonly localPort: number;
  /** Bytes received and not yet consumed by a forward. */
  readonly buffered: Buffer;
  /** Wait for more bytes; false once the client finished sending or went away. */
  more(): Promise<boolean>;
  /** Write without closing (a SOCKS method selection). */
  send(bytes: Buffer): void;
  /** Write a last answer and close, without losing the answer to a reset. */
  finish(bytes: Buffer): void;
  /** Abort the connection with a reset. */
  reset(): void;
  /**
   * Dial and relay; the first `consumed` bytes of `buffered` were the handshake, the rest follow
   * `toUpstream`. If the dial fails, the connection is still the caller's to finish or reset.
   */
  forward(consumed: number, target: DialTarget): DialRelay;
  /** Settles once the connection is closed (or handed to a relay that has finished). */
  readonly closed: Promise<void>;
}

// ---- Node sockets ------------------------------------------------------------------------------

/** How long an answered client may take to close before it is cut off. */
const LINGER_MS = 2000;

export class SocketConn implements ClientConn {
  buffered: Buffer = Buffer.alloc(0);
  readonly closed: Promise<void>;
  private waiter: ((more: boolean) => void) | null = null;
  private ended = false;
  private detached = false;
  private readonly onData = (chunk: Buffer) => {
    this.buffered = this.buffered.length === 0 ? chunk : Buffer.concat([this.buffered, chunk]);
    this.wake(true);
  };
  private readonly onEnd = () => {
    this.ended = true;
    this.wake(false);
  };

  constructor(
    readonly socket: net.Socket,
    private readonly engine: ByteEngine | 'auto',
    private readonly onUpstream?: (s: net.Socket) => void,
  ) {
    // Half-closes are forwarded, not answered by closing our side too.
    socket.allowHalfOpen = true;
    socket.on('error', () => {});
    this.closed = new Promise((resolve) => socket.once('close', () => resolve()));
    socket.on('data', this.onData);
    socket.on('end', this.onEnd);
    socket.on('close', this.onEnd);
  }

  get localAddress(): string {
    return (this.socket.localAddress ?? '').replace(/^::ffff:/, '');
  }

  get localPort(): number {
    return this.socket.localPort ?? 0;
  }

  more(): Promise<boolean> {
    if (this.ended || this.detached || this.socket.destroyed) return Promise.resolve(false);
    return new Promise((resolve) => (this.waiter = resolve));
  }

  send(bytes: Buffer): void {
    if (!this.socket.destroyed) this.socket.write(bytes);
  }

  finish(bytes: Buffer): void {
    this.detach();
    const socket = this.socket;
    if (socket.destroyed) return;
    socket.end(bytes, () => {
      // Read and discard until the client closes, for a bounded time: closing with unread
      // request bytes makes the kernel send a reset, which can destroy the answer in flight.
      if (socket.destroyed) return;
      const timer = setTimeout(() => socket.destroy(), LINGER_MS);
      timer.unref();
      socket.once('close', () => clearTimeout(timer));
      socket.once('end', () => socket.destroy());
      socket.on('data', () => {});
      socket.resume();
    });
  }

  reset(): void {
    this.detach();
    if (!this.socket.destroyed) this.socket.resetAndDestroy();
  }

  forward(consumed: number, target: DialTarget): DialRelay {
    this.detach();
    const leftover = this.buffered.subarray(consumed);
    const toUpstream = leftover.length ? Buffer.concat([target.toUpstream, leftover]) : target.toUpstream;
    return dialAndRelay(this.socket, { ...target, toUpstream }, this.engine, this.onUpstream);
  }

  private wake(more: boolean): void {
    const w = this.waiter;
    this.waiter = null;
    w?.(more);
  }

  /** Stop reading for the handshake; a waiting more() gives up. */
  private detach(): void {
    if (this.detached) return;
    this.detached = true;
    this.socket.off('data', this.onData);
    this.socket.off('end', this.onEnd);
    this.socket.off('close', this.onEnd);
    this.socket.pause();
    this.wake(false);
  }
}

// ---- the addon's fronts ------------------------------------------------------------------------

const FRONT_DATA = 1;
const FRONT_EOF = 2;
const FRONT_CLOSED = 3;

/**
 * A listener served by the addon on Node's event loop: it accepts and reads without Node socket
 * objects; each connection shows up here as a NativeConn once its first bytes arrive (or at
 * once, for a transparent listener).
 */
export class NativeFront {
  private readonly conns = new Map<number, NativeConn>();
  private stopped = false;

  private constructor(
    private readonly addon: NativeAddon,
    private handle: unknown,
    private readonly onConn: (conn: NativeConn) => void,
  ) {}

  /**
   * Take over a listening net.Server: the addon accepts on a duplicate of its descriptor and
   * Node's own is closed. Null when the addon or the descriptor is unavailable.
   */
  static take(server: net.Server, transparent: boolean, onConn: (conn: NativeConn) => void): NativeFront | null {
    const addon = nativeAddon();
    const fd = (server as unknown as { _handle?: { fd?: number } | null })._handle?.fd;
    if (!addon || typeof addon.listen !== 'function' || typeof fd !== 'number' || fd < 0) return null;
    const front: NativeFront = new NativeFront(addon, null, onConn);
    front.handle = addon.listen(fd, transparent, (kind, id, data, localAddress, localPort, errno) =>
      front.event(kind, id, data, localAddress, localPort, errno),
    );
    // Same tick as the dup: Node never gets to accept on it.
    server.close();
    return front;
  }

  get connections(): number {
    return this.conns.size;
  }

  /** Close the listener and reset the connections still in their handshake. */
  stop(): void {
    if (this.stopped) return;
    this.stopped = true;
    this.addon.stop(this.handle);
    for (const c of [...this.conns.values()]) c.gone();
  }

  private event(kind: number, id: number, data: Buffer | null, localAddress: string, localPort: number, errno: number): void {
    let conn = this.conns.get(id);
    if (!conn) {
      if (kind === FRONT_CLOSED) return;
      conn = new NativeConn(this.addon, this.handle, id, localAddress, localPort, () => this.conns.delete(id));
      this.conns.set(id, conn);
      if (kind === FRONT_DATA && data) conn.append(data);
      if (kind === FRONT_EOF) conn.eof();
      this.onConn(conn);
      return;
    }
    if (kind === FRONT_DATA) conn.append(data ?? Buffer.alloc(0));
    else if (kind === FRONT_EOF) conn.eof();
    else if (kind === FRONT_CLOSED) conn.gone(errno);
  }
}

export class NativeConn implements ClientConn {
  buffered: Buffer = Buffer.alloc(0);
  readonly closed: Promise<void>;
  private settleClosed: () => void = () => {};
  private waiter: ((more: boolean) => void) | null = null;
  private finishedSending = false;
  /** No longer in the front: answered, reset, gone, or handed to a relay. */
  private released = false;
  /** The relay of a forward() whose dial failed: it holds the socket until we answer. */
  private failedRelay: unknown = null;

  constructor(
    private readonly addon: NativeAddon,
    private readonly front: unknown,
    readonly id: number,
    readonly localAddress: string,
    readonly localPort: number,
    private readonly onRelease: () => void,
  ) {
    this.closed = new Promise((resolve) => (this.settleClosed = resolve));
  }

  append(data: Buffer): void {
    this.buffered = this.buffered.length === 0 ? data : Buffer.concat([this.buffered, data]);
    this.wake(true);
  }

  eof(): void {
    this.finishedSending = true;
    this.wake(false);
  }

  gone(_errno = 0): void {
    this.finishedSending = true;
    this.wake(false);
    this.release();
    this.settleClosed();
  }

  more(): Promise<boolean> {
    if (this.finishedSending || this.released) return Promise.resolve(false);
    return new Promise((resolve) => {
      this.waiter = resolve;
      this.addon.more(this.front, this.id);
    });
  }

  send(bytes: Buffer): void {
    if (!this.released) this.addon.send(this.front, this.id, bytes);
  }

  finish(bytes: Buffer): void {
    if (this.failedRelay) {
      this.addon.answer(this.failedRelay, bytes, false);
      this.failedRelay = null;
      return;
    }
    if (this.released) return;
    this.addon.reply(this.front, this.id, bytes);
    this.release();
    this.settleClosed();
  }

  reset(): void {
    if (this.failedRelay) {
      this.addon.answer(this.failedRelay, Buffer.alloc(0), true);
      this.failedRelay = null;
      return;
    }
    if (this.released) return;
    this.addon.reset(this.front, this.id);
    this.release();
    this.settleClosed();
  }

  forward(consumed: number, target: DialTarget): DialRelay {
    const leftover = this.buffered.subarray(consumed);
    const toUpstream = leftover.length ? Buffer.concat([target.toUpstream, leftover]) : target.toUpstream;
    const addresses = target.addresses.slice(0, MAX_DIAL_ADDRESSES);
    this.release();
    let settleConnected: (o: Awaited<DialRelay['connected']>) => void = () => {};
    let settleDone: (s: RelayStats) => void = () => {};
    const connected = new Promise<Awaited<DialRelay['connected']>>((r) => (settleConnected = r));
    const done = new Promise<RelayStats>((r) => (settleDone = r));
    let relay: unknown = null;
    let finished = false;
    const pre = toUpstream.length;
    // The addon reports a failed dial at once, a successful one only when the relay ends (no
    // wake-up of this thread while the client waits for its first bytes).
    relay = this.addon.forward(this.front, this.id, addresses, target.port, Math.max(1, Math.round(target.timeoutMs)), target.toClient, toUpstream, (kind, errno, a, b, cancelled, wasConnected) => {
      if (kind === EVENT_CONNECT) {
        // The relay keeps the socket until finish() or reset() answers the client.
        this.failedRelay = relay;
        settleConnected({ ok: false, code: errnoName(errno), cancelled: false });
        return;
      }
      finished = true;
      this.failedRelay = null;
      if (wasConnected) settleConnected({ ok: true, address: '' });
      else settleConnected({ ok: false, code: errno ? errnoName(errno) : 'ECANCELED', cancelled: cancelled || errno === 0 });
      this.settleClosed();
      settleDone({ engine: 'native', bytesFromClient: a + pre, bytesFromUpstream: b, error: errno ? errnoName(errno) : null, cancelled });
    });
    return {
      engine: 'native',
      connected,
      done,
      cancel: () => {
        if (!finished) this.addon.cancel(relay);
      },
    };
  }

  private wake(more: boolean): void {
    const w = this.waiter;
    this.waiter = null;
    w?.(more);
  }

  private release(): void {
    if (this.released) return;
    this.released = true;
    this.wake(false);
    this.onRelease();
  }
}
