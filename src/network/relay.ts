// The byte path of an allowed connection: client <-> upstream, both directions, half-close
// forwarded. Uses the kernel's splice() through native/splice.c when the addon is built, else
// Node streams. The decision has been made before this point; nothing here looks at the bytes.

import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import type * as net from 'node:net';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export type ByteEngine = 'splice' | 'js';

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

interface SpliceAddon {
  start(fdA: number, fdB: number, done: (errno: number, aToB: number, bToA: number, cancelled: boolean) => void): unknown;
  cancel(handle: unknown): void;
  active(): number;
}

let addon: SpliceAddon | null | undefined;
let addonLoadError: string | null = null;

/** Where `scripts/build-native.mjs` puts the addon, from dist/src/network or src/network. */
function addonCandidates(): string[] {
  const here = dirname(fileURLToPath(import.meta.url));
  return [join(here, '..', '..', '..', 'build', 'cordon_splice.node'), join(here, '..', '..', 'build', 'cordon_splice.node')];
}

/** The splice addon, or null when it is not built (or disabled with CORDON_SPLICE=0). */
export function spliceAddon(): SpliceAddon | null {
  if (addon !== undefined) return addon;
  addon = null;
  if (process.env.CORDON_SPLICE === '0') {
    addonLoadError = 'disabled by CORDON_SPLICE=0';
    return addon;
  }
  if (process.platform !== 'linux') {
    addonLoadError = 'splice() is Linux-only';
    return addon;
  }
  const path = addonCandidates().find((p) => existsSync(p));
  if (!path) {
    addonLoadError = 'build/cordon_splice.node not built (run `node scripts/build-native.mjs`)';
    return addon;
  }
  try {
    addon = createRequire(import.meta.url)(path) as SpliceAddon;
  } catch (e) {
    addonLoadError = `cannot load ${path}: ${(e as Error).message}`;
  }
  return addon;
}

/** Why the splice engine is unavailable (for `cordon doctor`), or null when it is available. */
export function spliceUnavailableReason(): string | null {
  return spliceAddon() ? null : addonLoadError;
}

/** Relays still running in the addon (for leak checks). */
export function activeSpliceRelays(): number {
  return spliceAddon()?.active() ?? 0;
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
  const native = prefer === 'js' ? null : spliceAddon();
  if (prefer === 'splice' && !native) throw new Error(`splice engine unavailable: ${spliceUnavailableReason()}`);
  return native ? spliceRelay(native, client, upstream) : jsRelay(client, upstream);
}

function spliceRelay(native: SpliceAddon, client: net.Socket, upstream: net.Socket): Relay {
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
      return { engine: 'splice', bytesFromClient: pre[0]!, bytesFromUpstream: pre[1]!, error: null, cancelled };
    }
    try {
      return await new Promise<RelayStats>((resolve) => {
        handle = native.start(fdClient, fdUpstream, (errno, aToB, bToA, wasCancelled) => {
          handle = null;
          // The relay thread is finished with the fds: now Node may close them.
          client.destroy();
          upstream.destroy();
          resolve({
            engine: 'splice',
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
    engine: 'splice',
    done,
    cancel() {
      cancelled = true;
      if (handle) native.cancel(handle);
      fallback?.cancel();
    },
  };
}

const ERRNO_NAMES: Record<number, string> = { 32: 'EPIPE', 104: 'ECONNRESET', 110: 'ETIMEDOUT', 113: 'EHOSTUNREACH', 9: 'EBADF', 5: 'EIO' };
function errnoName(errno: number): string {
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
