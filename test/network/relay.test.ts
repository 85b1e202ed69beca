// The byte path on real TCP sockets: integrity both ways, half-close, bytes Node buffered before
// the hand-over, cancellation, and a peer that resets. Run for the native addon (both of its
// byte loops: copying and splice) and for JS.

import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import * as net from 'node:net';
import { after, before, describe, it } from 'node:test';

import { type ByteEngine, activeNativeRelays, nativeUnavailableReason, startRelay } from '../../src/network/relay.js';
import { waitFor } from './helpers.js';

interface Pair {
  /** Outer client (the sandboxed program). */
  outer: net.Socket;
  /** The proxy's accepted socket. */
  inner: net.Socket;
}

/** A connected TCP pair on loopback: outer <-> inner. */
async function tcpPair(): Promise<Pair> {
  const server = net.createServer({ allowHalfOpen: true });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  const accepted = new Promise<net.Socket>((r) => server.once('connection', r));
  const outer = net.connect({ port: (server.address() as net.AddressInfo).port, host: '127.0.0.1', allowHalfOpen: true });
  await new Promise<void>((r) => outer.once('connect', () => r()));
  const inner = await accepted;
  server.close();
  return { outer, inner };
}

function collect(socket: net.Socket): Promise<Buffer> {
  const chunks: Buffer[] = [];
  socket.on('data', (c: Buffer) => chunks.push(c));
  return new Promise((resolve) => socket.once('end', () => resolve(Buffer.concat(chunks))));
}

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

interface Variant {
  name: string;
  engine: ByteEngine;
  /** The native byte loop (CORDON_RELAY, read by the addon when a relay starts). */
  relay?: 'copy' | 'splice';
}
const variants: Variant[] = [
  ...(nativeUnavailableReason() === null
    ? [
        { name: 'native (copy loop)', engine: 'native' as const, relay: 'copy' as const },
        { name: 'native (splice loop)', engine: 'native' as const, relay: 'splice' as const },
      ]
    : []),
  { name: 'js', engine: 'js' },
];

describe('relay', () => {
  it('has the native addon built (the fast path exists on Linux)', { skip: process.env.CORDON_NATIVE === '0' && 'disabled by CORDON_NATIVE=0' }, () => {
    assert.equal(nativeUnavailableReason(), null);
  });

  for (const { name, engine, relay } of variants) {
    describe(`engine ${name}`, () => {
      const saved = process.env.CORDON_RELAY;
      before(() => {
        if (relay) process.env.CORDON_RELAY = relay;
      });
      after(() => {
        if (saved === undefined) delete process.env.CORDON_RELAY;
        else process.env.CORDON_RELAY = saved;
      });

      it('moves bytes intact in both directions and forwards half-closes', async () => {
        const client = await tcpPair(); // sandbox side
        const upstream = await tcpPair(); // internet side: upstream.inner is the proxy's dialled socket
        const relay = startRelay(client.inner, upstream.outer, engine);
        assert.equal(relay.engine, engine);
        const up = randomBytes(8 << 20);
        const down = randomBytes(12 << 20);
        const gotUp = collect(upstream.inner);
        const gotDown = collect(client.outer);
        client.outer.end(up);
        // Half-close: the upstream still answers after the client finished sending.
        const received = await gotUp;
        assert.equal(sha(received), sha(up));
        upstream.inner.end(down);
        assert.equal(sha(await gotDown), sha(down));
        const stats = await relay.done;
        assert.deepEqual(
          { ...stats },
          { engine, bytesFromClient: up.length, bytesFromUpstream: down.length, error: null, cancelled: false },
        );
        await waitFor(() => client.inner.destroyed && upstream.outer.destroyed, 5000, 'relay sockets closed');
        client.outer.destroy();
        upstream.inner.destroy();
      });

      it('forwards bytes Node had already buffered before the hand-over, first and in order', async () => {
        const client = await tcpPair();
        const upstream = await tcpPair();
        // Let Node read early bytes into the proxy-side socket's buffer (paused, nobody consuming).
        client.inner.pause();
        client.outer.write('early-');
        await waitFor(() => client.inner.readableLength > 0, 5000, 'early bytes buffered');
        const got = collect(upstream.inner);
        const relay = startRelay(client.inner, upstream.outer, engine);
        client.outer.end('late');
        assert.equal((await got).toString(), 'early-late');
        upstream.inner.end();
        const stats = await relay.done;
        assert.equal(stats.bytesFromClient, 'early-late'.length);
        client.outer.destroy();
      });

      it('stops on cancel() and closes both sockets', async () => {
        const client = await tcpPair();
        const upstream = await tcpPair();
        const relay = startRelay(client.inner, upstream.outer, engine);
        client.outer.write('x');
        await new Promise<void>((r) => upstream.inner.once('data', () => r()));
        // The far ends see the relay go away (EOF or reset).
        const gone = (s: net.Socket) => new Promise<void>((r) => (s.once('end', () => r()), s.once('error', () => r())));
        const outerGone = gone(client.outer);
        const upstreamGone = gone(upstream.inner);
        client.outer.resume();
        upstream.inner.resume();
        relay.cancel();
        const stats = await relay.done;
        assert.equal(stats.cancelled, true);
        await Promise.all([outerGone, upstreamGone]);
        client.outer.destroy();
        upstream.inner.destroy();
      });

      it('ends when a peer resets the connection, without hanging', async () => {
        const client = await tcpPair();
        const upstream = await tcpPair();
        const relay = startRelay(client.inner, upstream.outer, engine);
        const clientLearns = new Promise<void>((r) => (client.outer.once('end', () => r()), client.outer.once('error', () => r())));
        client.outer.resume();
        await new Promise<void>((r) => upstream.inner.write(randomBytes(1 << 20), () => r()));
        upstream.inner.resetAndDestroy();
        // The client sees its side end, and once it closes too the relay is over.
        await clientLearns;
        client.outer.destroy();
        const stats = await relay.done;
        assert.equal(stats.cancelled, false);
      });
    });
  }

  it('leaves no relay threads behind', async () => {
    await waitFor(() => activeNativeRelays() === 0, 5000, 'relays finished');
  });
});
