// The byte path of an allowed connection: client <-> upstream, both directions, half-close
// forwarded. Uses the native addon (native/splice.c: its own threads, no JavaScript per byte)
// when it is built, else Node streams. The decision has been made before this point; nothing
// here looks at the bytes.

import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import * as net from 'node:net';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** native: the addon's threads move the bytes; js: Node streams (the fallback). */
export type ByteEngine = 'native' | 'js';

export interface RelayStats {
  engine: ByteEngine;
  bytesFromClient: number;
  bytesFromUpstream: number;
  /** Set when the relay ended on a socket error (e.g. `ECONNRESET`). */
  error: string | null;
  cancelled: boolean;
}

export interface Relay {
  readonly engine: ByteEngine;
  readonly done: Promise<RelayStats>;
  /** Stop relaying; `done` still resolves, with cancelled = true. */
  cancel(): void;
}

export const EVENT_CONNECT = 1;
export const EVENT_DONE = 2;
export type RelayEvent = (kind: number, errno: number, a: number, b: number, cancelled: boolean, connected: boolean) => void;
/** kind: 1 data, 2 eof, 3 closed (see native/splice.c). Called from the event loop. */
export type FrontEvent = (kind: number, id: number, data: Buffer | null, localAddress: string, localPort: number, errno: number) => void;

/** The addon's functions (native/splice.c documents them). Handles are opaque. */
export interface NativeAddon {
  start(fdA: number, fdB: number, onEvent: RelayEvent): unknown;
  dial(clientFd: number, addresses: string[], port: number, timeoutMs: number, toClient: Buffer, toUpstream: Buffer, onEvent: RelayEvent): unknown;
  answer(relay: unknown, bytes: Buffer, reset: boolean): void;
  cancel(relay: unknown): void;
  listen(fd: number, transparent: boolean, onEvent: FrontEvent): unknown;
  more(front: unknown, id: number): void;
  send(front: unknown, id: number, bytes: Buffer): void;
  reply(front: unknown, id: number, bytes: Buffer): void;
  reset(front: unknown, id: number): void;
  forward(front: unknown, id: number, addresses: string[], port: number, timeoutMs: number, toClient: Buffer, toUpstream: Buffer, onEvent: RelayEvent): unknown;
  stop(front: unknown): void;
  /** [relays, fronts, front connections] still running. */
  active(): [number, number, number];
}

let addon: NativeAddon | null | undefined;
let addonLoadError: string | null = null;

/** Where `scripts/build-native.mjs` puts the addon, from dist/src/network or src/network. */
function addonCandidates(): string[] {
  const here = dirname(fileURLToPath(import.meta.url));
  return [join(here, '..', '..', '..', 'build', 'cordon_splice.node'), join(here, '..', '..', 'build', 'cordon_splice.node')];
}

/** The native addon (build/cordon_splice.node), or null when it is not built (or disabled with CORDON_NATIVE=0). */
export function nativeAddon(): NativeAddon | null {
  if (addon !== undefined) return addon;
  addon = null;
  if (process.env.CORDON_NATIVE === '0') {
    addonLoadError = 'disabled by CORDON_NATIVE=0';
    return addon;
  }
  if (process.platform !== 'linux') {
    addonLoadError = 'the native relay is Linux-only';
    return addon;
  }
  const path = addonCandidates().find((p) => existsSync(p));
  if (!path) {
    addonLoadError = 'build/cordon_splice.node not built (run `node scripts/build-native.mjs`)';
    return addon;
  }
  try {
    addon = createRequire(import.meta.url)(path) as NativeAddon;
  } catch (e) {
    addonLoadError = `cannot load ${path}: ${(e as Error).message}`;
  }
  return addon;
}

/** Why the native engine is unavailable (for `cordon doctor`), or null when it is available. */
export function nativeUnavailableReason(): string | null {
  return nativeAddon() ? null : addonLoadError;
}

/** Relays still running in the addon (for leak checks). */
export function activeNativeRelays(): number {
  return nativeAddon()?.active()[0] ?? 0;
}

/** Fronts and their connections still running in the addon (for leak checks). */
export function activeNativeFronts(): { fronts: number; connections: number } {
  const a = nativeAddon()?.active();
  return { fronts: a?.[1] ?? 0, connections: a?.[2] ?? 0 };
}

interface StreamHandle {
  fd?: number;
  reading?: boolean;
  readStop?: () => number;
}

function handleOf(socket: net.Socket): StreamHandle | null {
  // Node keeps the libuv stream in `_handle`; its fd and readStop() are what a hand-over needs.
  return ((socket as unknown as { _handle?: StreamHandle | null })._handle ?? null) as StreamHandle | null;
}

/** Stop Node from reading the socket (unlike pause(), this stops the kernel reads too). */
function stopReading(socket: net.Socket): void {
  socket.pause();
  const h = handleOf(socket);
  if (h && h.reading && typeof h.readStop === 'function') {
    h.reading = false;
    h.readStop();
  }
}

/** Take whatever Node has already read from the socket but nobody consumed. */
function takeBuffered(socket: net.Socket): Buffer[] {
  const chunks: Buffer[] = [];
  // Bounded: the readable buffer holds at most a few chunks once reading has stopped.
  for (let i = 0; i < 1024 && socket.readableLength > 0; i++) {
    const c = socket.read() as Buffer | null;
    if (c === null) break;
    chunks.push(c);
  }
  // read() may have restarted reading to refill the buffer; stop it again.
  stopReading(socket);
  return chunks;
}

function writeAll(socket: net.Socket, chunks: Buffer[]): Promise<void> {
  if (chunks.length === 0 || socket.destroyed) return Promise.resolve();
  return new Promise((resolve) => {
    socket.write(chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks), () => resolve());
  });
}

function netConnect(address: string, port: number): net.Socket {
  return net.connect({ host: address, port, allowHalfOpen: true, noDelay: true });
}

function fdOf(socket: net.Socket): number {
  const fd = handleOf(socket)?.fd;
  return typeof fd === 'number' ? fd : -1;
}

/**
 * Start relaying. Preconditions: everything the caller wrote to either socket has been flushed
 * (its write callback ran), and neither socket has a 'data' listener left. Bytes Node has
 * already buffered on either side are forwarded first. Both sockets are destroyed when `done`
 * resolves.
 */
export function startRelay(client: net.Socket, upstream: net.Socket, prefer: ByteEngine | 'auto' = 'auto'): Relay {
  client.setNoDelay(true);
  upstream.setNoDelay(true);
  const native = prefer === 'js' ? null : nativeAddon();
  if (prefer === 'native' && !native) throw new Error(`native byte engine unavailable: ${nativeUnavailableReason()}`);
  return native ? nativeRelay(native, client, upstream) : jsRelay(client, upstream);
}

function nativeRelay(native: NativeAddon, client: net.Socket, upstream: net.Socket): Relay {
  let handle: unknown = null;
  let cancelled = false;
  let fallback: Relay | null = null;
  const done = (async (): Promise<RelayStats> => {
    stopReading(client);
    stopReading(upstream);
    // Forward anything already read (e.g. a TLS ClientHello sent right behind CONNECT).
    const fromClient = takeBuffered(client);
    const fromUpstream = takeBuffered(upstream);
    await Promise.all([writeAll(upstream, fromClient), writeAll(client, fromUpstream)]);
    const pre = [fromClient, fromUpstream].map((cs) => cs.reduce((n, c) => n + c.length, 0));
    const fdClient = fdOf(client);
    const fdUpstream = fdOf(upstream);
    if (cancelled || client.destroyed || upstream.destroyed || fdClient < 0 || fdUpstream < 0) {
      client.destroy();
      upstream.destroy();
      return { engine: 'native', bytesFromClient: pre[0]!, bytesFromUpstream: pre[1]!, error: null, cancelled };
    }
    try {
      return await new Promise<RelayStats>((resolve) => {
        handle = native.start(fdClient, fdUpstream, (_kind, errno, aToB, bToA, wasCancelled) => {
          handle = null;
          // The relay thread is finished with the fds: now Node may close them.
          client.destroy();
          upstream.destroy();
          resolve({
            engine: 'native',
            bytesFromClient: aToB + pre[0]!,
            bytesFromUpstream: bToA + pre[1]!,
            error: errno ? errnoName(errno) : null,
            cancelled: wasCancelled,
          });
        });
      });
    } catch {
      // No thread could be started (resource limits): relay in JS instead.
      fallback = jsRelay(client, upstream);
      if (cancelled) fallback.cancel();
      return fallback.done;
    }
  })();
  return {
    engine: 'native',
    done,
    cancel() {
      cancelled = true;
      if (handle) native.cancel(handle);
      fallback?.cancel();
    },
  };
}

const ERRNO_NAMES: Record<number, string> = {
  5: 'EIO',
  9: 'EBADF',
  13: 'EACCES',
  32: 'EPIPE',
  97: 'EAFNOSUPPORT',
  99: 'EADDRNOTAVAIL',
  101: 'ENETUNREACH',
  104: 'ECONNRESET',
  110: 'ETIMEDOUT',
  111: 'ECONNREFUSED',
  113: 'EHOSTUNREACH',
};
export function errnoName(errno: number): string {
  return ERRNO_NAMES[errno] ?? `errno ${errno}`;
}

function jsRelay(client: net.Socket, upstream: net.Socket): Relay {
  let finish: (s: RelayStats) => void = () => {};
  let bytesFromClient = 0;
  let bytesFromUpstream = 0;
  let error: string | null = null;
  let cancelled = false;
  let ended = false;
  const done = new Promise<RelayStats>((resolve) => (finish = resolve));
  const end = () => {
    if (ended) return;
    ended = true;
    client.destroy();
    upstream.destroy();
    finish({ engine: 'js', bytesFromClient, bytesFromUpstream, error, cancelled });
  };
  const onError = (e: Error & { code?: string }) => {
    error ??= e.code ?? e.message;
    end();
  };
  client.on('error', onError);
  upstream.on('error', onError);
  client.on('data', (c: Buffer) => (bytesFromClient += c.length));
  upstream.on('data', (c: Buffer) => (bytesFromUpstream += c.length));
  // pipe() forwards EOF as end() (a half-close); a socket closes itself once it has ended both
  // ways (allowHalfOpen), and the relay is over when both have closed.
  let closed = 0;
  const onClose = () => {
    if (++closed === 2) end();
  };
  client.once('close', onClose);
  upstream.once('close', onClose);
  client.pipe(upstream);
  upstream.pipe(client);
  client.resume();
  upstream.resume();
  if (client.destroyed || upstream.destroyed) end();
  return {
    engine: 'js',
    done,
    cancel() {
      cancelled = true;
      end();
    },
  };
}

export interface DialTarget {
  /** IP literals, tried in order (the ones the address guard let through). */
  addresses: string[];
  port: number;
  /** For all attempts together. */
  timeoutMs: number;
  /** Written to the client once connected (the handshake's success answer), before any upstream byte. */
  toClient: Buffer;
  /** Written to the upstream once connected (rewritten request head, bytes read past the handshake). */
  toUpstream: Buffer;
}

export type DialOutcome =
  | { ok: true; address: string }
  | { ok: false; /** errno name, e.g. `ECONNREFUSED`, `ETIMEDOUT` */ code: string; cancelled: boolean };

export interface DialRelay {
  readonly engine: ByteEngine;
  /** Settles once connected, or when every address failed (then nothing was written to the client). */
  readonly connected: Promise<DialOutcome>;
  /** Settles when the relay is over (at once after a failed dial). The client is destroyed only if the dial succeeded. */
  readonly done: Promise<RelayStats>;
  cancel(): void;
}

/**
 * Connect to the first address that answers, write the prefaces, and relay. With the native
 * addon the dial happens on the relay thread and Node never holds the upstream socket. The
 * client socket must have no 'data' listener and nothing unwritten; bytes Node has already
 * buffered from it are sent after `toUpstream`. `onUpstream` sees each upstream socket the JS
 * engine creates (for bookkeeping).
 */
export function dialAndRelay(client: net.Socket, target: DialTarget, prefer: ByteEngine | 'auto' = 'auto', onUpstream?: (s: net.Socket) => void): DialRelay {
  if (target.addresses.length === 0) throw new Error('dialAndRelay: no address to dial');
  const native = prefer === 'js' ? null : nativeAddon();
  if (prefer === 'native' && !native) throw new Error(`native byte engine unavailable: ${nativeUnavailableReason()}`);
  return native ? nativeDial(native, client, target) : jsDial(client, target, prefer === 'auto' ? 'auto' : 'js', onUpstream);
}

export const MAX_DIAL_ADDRESSES = 8;

function nativeDial(native: NativeAddon, client: net.Socket, target: DialTarget): DialRelay {
  let settleConnected: (o: DialOutcome) => void = () => {};
  let settleDone: (s: RelayStats) => void = () => {};
  const connected = new Promise<DialOutcome>((r) => (settleConnected = r));
  const done = new Promise<RelayStats>((r) => (settleDone = r));
  const addresses = target.addresses.slice(0, MAX_DIAL_ADDRESSES);
  let handle: unknown = null;
  let finished = false;
  stopReading(client);
  const buffered = takeBuffered(client);
  const toUpstream = buffered.length ? Buffer.concat([target.toUpstream, ...buffered]) : target.toUpstream;
  const pre = toUpstream.length;
  const fd = fdOf(client);
  const failed = (code: string, cancelled: boolean) => {
    finished = true;
    settleConnected({ ok: false, code, cancelled });
    settleDone({ engine: 'native', bytesFromClient: 0, bytesFromUpstream: 0, error: code, cancelled });
  };
  if (fd < 0 || client.destroyed) {
    failed('EBADF', false);
    return { engine: 'native', connected, done, cancel() {} };
  }
  try {
    handle = native.dial(fd, addresses, target.port, Math.max(1, Math.round(target.timeoutMs)), target.toClient, toUpstream, (kind, errno, a, b, cancelled) => {
      if (kind === EVENT_CONNECT) {
        if (errno === 0) {
          settleConnected({ ok: true, address: addresses[a] ?? '' });
        } else {
          handle = null;
          failed(errnoName(errno), false);
        }
        return;
      }
      // EVENT_DONE: the thread is finished with the client fd; now Node may close it.
      handle = null;
      finished = true;
      settleConnected({ ok: false, code: 'ECANCELED', cancelled: true }); // no-op once connected
      client.destroy();
      settleDone({ engine: 'native', bytesFromClient: a + pre, bytesFromUpstream: b, error: errno ? errnoName(errno) : null, cancelled });
    });
  } catch (e) {
    failed((e as Error).message, false);
  }
  return {
    engine: 'native',
    connected,
    done,
    cancel() {
      if (handle) native.cancel(handle);
      else if (!finished) client.destroy();
    },
  };
}

function jsDial(client: net.Socket, target: DialTarget, engine: 'auto' | 'js', onUpstream?: (s: net.Socket) => void): DialRelay {
  let cancelled = false;
  let attempt: net.Socket | null = null;
  let relay: Relay | null = null;
  let settleDone: (s: RelayStats) => void = () => {};
  const done = new Promise<RelayStats>((r) => (settleDone = r));
  const connected = (async (): Promise<DialOutcome> => {
    const deadline = Date.now() + target.timeoutMs;
    let lastCode = 'ETIMEDOUT';
    for (const address of target.addresses.slice(0, MAX_DIAL_ADDRESSES)) {
      const left = deadline - Date.now();
      if (left <= 0 || cancelled) break;
      const outcome = await new Promise<{ socket: net.Socket } | { code: string }>((resolve) => {
        const socket = netConnect(address, target.port);
        attempt = socket;
        onUpstream?.(socket);
        const timer = setTimeout(() => {
          socket.destroy();
          resolve({ code: 'ETIMEDOUT' });
        }, left);
        socket.once('connect', () => {
          clearTimeout(timer);
          // Paused before Node's first read: the relay gets every upstream byte.
          socket.pause();
          resolve({ socket });
        });
        socket.once('error', (e: Error & { code?: string }) => {
          clearTimeout(timer);
          socket.destroy();
          resolve({ code: e.code ?? 'EIO' });
        });
        socket.once('close', () => {
          clearTimeout(timer);
          resolve({ code: cancelled ? 'ECANCELED' : 'ECONNRESET' });
        });
      });
      if ('code' in outcome) {
        lastCode = outcome.code;
        continue;
      }
      const upstream = outcome.socket;
      if (cancelled || client.destroyed) {
        upstream.destroy();
        break;
      }
      await Promise.all([writeAll(client, [target.toClient]), writeAll(upstream, [target.toUpstream])]);
      relay = startRelay(client, upstream, 'js');
      const pre = target.toUpstream.length;
      void relay.done.then((s) => settleDone({ ...s, engine: engine === 'auto' ? 'js' : s.engine, bytesFromClient: s.bytesFromClient + pre }));
      return { ok: true, address };
    }
    const code = cancelled ? 'ECANCELED' : lastCode;
    settleDone({ engine: 'js', bytesFromClient: 0, bytesFromUpstream: 0, error: code, cancelled });
    return { ok: false, code, cancelled };
  })();
  return {
    engine: 'js',
    connected,
    done,
    cancel() {
      cancelled = true;
      if (relay) relay.cancel();
      else (attempt as net.Socket | null)?.destroy();
    },
  };
}
