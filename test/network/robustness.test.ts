// The proxy against clients that misbehave: slow, silent, malformed, oversized, many at once,
// and shut down under load. Leaks are checked with the proxy's socket count, the addon's relay
// count and /proc/self/fd.

import assert from 'node:assert/strict';
import * as net from 'node:net';
import { after, before, describe, it } from 'node:test';

import { activeNativeFronts, activeNativeRelays } from '../../src/network/relay.js';
import type { EgressProxyOptions } from '../../src/network/proxy.js';
import { PROXY_VARIANTS, type Upstream, exchange, openFds, startHttpUpstream, startProxy as startHarness, waitFor } from './helpers.js';

let web: Upstream;
before(async () => {
  web = await startHttpUpstream();
});
after(async () => {
  await web.close();
});

const ALLOW = ['allowed.test', '127.0.0.1'];

/** The I/O configuration under test (set per variant below). */
let variantOpts: Partial<EgressProxyOptions> = {};
const startProxy = (opts: Partial<EgressProxyOptions> & { allow: string[] }) => startHarness({ ...variantOpts, ...opts });

/** A tunnelled GET; resolves with the body length received after the tunnel's 200. */
function tunnelGet(proxyPort: number, host: string, path: string): Promise<{ status: string; bodyBytes: number }> {
  return new Promise((resolve, reject) => {
    const s = net.connect(proxyPort, '127.0.0.1');
    const chunks: Buffer[] = [];
    const timer = setTimeout(() => {
      s.destroy();
      reject(new Error('tunnel timed out'));
    }, 30_000);
    s.on('connect', () => s.write(`CONNECT ${host}:${web.port} HTTP/1.1\r\n\r\nGET ${path} HTTP/1.1\r\nHost: ${host}\r\nConnection: close\r\n\r\n`));
    s.on('data', (c: Buffer) => chunks.push(c));
    s.on('error', () => {});
    s.on('close', () => {
      clearTimeout(timer);
      const all = Buffer.concat(chunks);
      const status = all.toString('latin1', 0, all.indexOf('\r\n'));
      const inner = all.indexOf('\r\n\r\n', all.indexOf('\r\n\r\n') + 4);
      resolve({ status, bodyBytes: inner < 0 ? 0 : all.length - inner - 4 });
    });
  });
}

for (const variant of PROXY_VARIANTS) {
  describe(variant.name, () => {
    before(() => {
      variantOpts = variant.opts;
    });

    describe('slow and silent clients', () => {
      it('serves a client that sends its CONNECT one byte at a time', async () => {
        const h = await startProxy({ allow: ALLOW });
        try {
          const s = net.connect(h.port, '127.0.0.1');
          await new Promise<void>((r) => s.once('connect', () => r()));
          const chunks: Buffer[] = [];
          s.on('data', (c: Buffer) => chunks.push(c));
          const closed = new Promise<void>((r) => s.once('close', () => r()));
          const request = `CONNECT allowed.test:${web.port} HTTP/1.1\r\n\r\n`;
          for (const ch of request) {
            s.write(ch);
            await new Promise((r) => setTimeout(r, 3));
          }
          await waitFor(() => Buffer.concat(chunks).includes('\r\n\r\n'), 10_000, 'tunnel established');
          s.write('GET /hello HTTP/1.1\r\nHost: allowed.test\r\nConnection: close\r\n\r\n');
          await closed;
          const text = Buffer.concat(chunks).toString();
          assert.match(text, /^HTTP\/1\.1 200 Connection established[\s\S]*hello from upstream/);
        } finally {
          await h.close();
        }
      });

      it('delivers a large download intact to a client that reads slowly (backpressure)', async () => {
        const h = await startProxy({ allow: ALLOW });
        try {
          const s = net.connect(h.port, '127.0.0.1');
          const size = 24 << 20;
          let received = 0;
          s.on('connect', () => s.write(`CONNECT allowed.test:${web.port} HTTP/1.1\r\n\r\nGET /bytes/${size} HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n`));
          const first = new Promise<void>((r) =>
            s.once('data', (c: Buffer) => {
              received += c.length;
              s.pause();
              r();
            }),
          );
          await first;
          // Stall long enough for every buffer on the path (socket queues, relay pipe) to fill up.
          await new Promise((r) => setTimeout(r, 300));
          s.on('data', (c: Buffer) => {
            received += c.length;
            // Read in bursts, pausing now and then.
            if (received % (1 << 20) < c.length) {
              s.pause();
              setTimeout(() => s.resume(), 2);
            }
          });
          s.resume();
          await new Promise<void>((r) => s.once('close', () => r()));
          assert.ok(received > size, `received ${received} bytes, expected more than ${size} (body + heads)`);
        } finally {
          await h.close();
        }
      });

      it('times out clients that never finish the handshake, answering HTTP ones with 408', async () => {
        const h = await startProxy({ allow: ALLOW, handshakeTimeoutMs: 300 });
        try {
          const silent = await exchange(h.port, '127.0.0.1', Buffer.alloc(0));
          assert.equal(silent.data.length, 0);
          const partialHttp = await exchange(h.port, '127.0.0.1', `CONNECT allowed.test:${web.port} HTTP/1.1\r\nHost: a\r\n`);
          assert.match(partialHttp.data.toString(), /^HTTP\/1\.1 408 Request Timeout/);
          const socksGreetingOnly = await exchange(h.port, '127.0.0.1', Buffer.from([5, 1, 0]));
          assert.deepEqual([...socksGreetingOnly.data], [5, 0], 'method chosen, then closed');
          const socksPartial = await exchange(h.port, '127.0.0.1', Buffer.from([5, 1, 0, 5, 1, 0, 3, 20, 0x61]));
          assert.deepEqual([...socksPartial.data], [5, 0]);
          await waitFor(() => h.proxy.stats.openSockets === 0, 5000, 'sockets closed');
        } finally {
          await h.close();
        }
      });

      it('survives clients that reset in the middle of a handshake', async () => {
        const h = await startProxy({ allow: ALLOW });
        try {
          for (const partial of ['CONNECT allowed.te', '\x05\x01', 'GET http://allowed.test/ HTTP/1.1\r\n']) {
            const s = net.connect(h.port, '127.0.0.1');
            await new Promise<void>((r) => s.once('connect', () => r()));
            await new Promise<void>((r) => s.write(partial, () => r()));
            s.resetAndDestroy();
          }
          await waitFor(() => h.proxy.stats.openSockets === 0, 5000, 'sockets closed');
          const ok = await tunnelGet(h.port, 'allowed.test', '/hello');
          assert.equal(ok.status, 'HTTP/1.1 200 Connection established');
        } finally {
          await h.close();
        }
      });
    });

    describe('malformed and oversized requests', () => {
      it('answers malformed CONNECT lines with 400 and keeps serving', async () => {
        const h = await startProxy({ allow: ALLOW });
        try {
          const bad = [
            'CONNECT allowed.test HTTP/1.1\r\n\r\n',
            'CONNECT :443 HTTP/1.1\r\n\r\n',
            'CONNECT allowed.test:99999 HTTP/1.1\r\n\r\n',
            'CONNECT [::1:443 HTTP/1.1\r\n\r\n',
            'CONNECT ::1:443 HTTP/1.1\r\n\r\n',
            'CONNECT allowed.test:443 HTTP/1.1 extra\r\n\r\n',
            'CONNECT allowed.test:443\r\n\r\n',
            'CONNECT allowed.test\u0000.evil.com:443 HTTP/1.1\r\n\r\n',
            'CONNECT allowed.test:443 HTTP/1.1\nHost: x\n\n',
            '\u0016\u0003\u0001\u0000\u00a5\u0001\u0000',
            'CONNECT allowed.test:443 HTTP/1.1\r\nHost : x\r\n\r\n',
          ];
          for (const request of bad) {
            const r = await exchange(h.port, '127.0.0.1', Buffer.from(request, 'latin1'));
            assert.match(r.data.toString('latin1'), /^HTTP\/1\.1 400 Bad Request\r\n[\s\S]*\r\n\r\ncordon proxy: /, JSON.stringify(request));
          }
          const ok = await tunnelGet(h.port, 'allowed.test', '/hello');
          assert.equal(ok.status, 'HTTP/1.1 200 Connection established');
        } finally {
          await h.close();
        }
      });

      it('refuses oversized heads with 431', async () => {
        const h = await startProxy({ allow: ALLOW });
        try {
          const r = await exchange(h.port, '127.0.0.1', `GET http://allowed.test/ HTTP/1.1\r\nX: ${'a'.repeat(20_000)}\r\n\r\n`);
          assert.match(r.data.toString(), /^HTTP\/1\.1 431 /);
          const endless = await exchange(h.port, '127.0.0.1', `GET http://allowed.test/ HTTP/1.1\r\n${'X: y\r\n'.repeat(5000)}`);
          assert.match(endless.data.toString(), /^HTTP\/1\.1 431 /);
        } finally {
          await h.close();
        }
      });

      it('refuses SOCKS names that are too long or not names (0x02), and keeps serving', async () => {
        const h = await startProxy({ allow: ALLOW });
        try {
          const socks = (name: Buffer, lengthByte = name.length) =>
            Buffer.concat([Buffer.from([5, 1, 0, 5, 1, 0, 3, lengthByte & 0xff]), name, Buffer.from([0, 80])]);
          // 255 bytes: the most SOCKS can carry, longer than any host name.
          const max = await exchange(h.port, '127.0.0.1', socks(Buffer.alloc(255, 'a')));
          assert.deepEqual([...max.data.subarray(0, 4)], [5, 0, 5, 2]);
          // A "300-byte name": the length byte wraps to 44; the proxy reads 44 bytes and refuses them.
          const wrapped = await exchange(h.port, '127.0.0.1', socks(Buffer.alloc(300, 'b'), 300));
          assert.deepEqual([...wrapped.data.subarray(0, 4)], [5, 0, 5, 2]);
          // A NUL inside the name: refused, never matched against "allowed.test".
          const nul = await exchange(h.port, '127.0.0.1', socks(Buffer.from('allowed.test\u0000.evil.com', 'latin1')));
          assert.deepEqual([...nul.data.subarray(0, 4)], [5, 0, 5, 2]);
          // A 300-character name in a CONNECT line.
          const long = await exchange(h.port, '127.0.0.1', `CONNECT ${'a.'.repeat(150)}test:443 HTTP/1.1\r\n\r\n`);
          assert.match(long.data.toString(), /^HTTP\/1\.1 403 /);
          assert.ok(h.proxy.denials.some((d) => /longer than 253/.test(d.reason)));
          assert.ok(h.proxy.denials.every((d) => !d.host.includes('\u0000')), 'denial records are printable');
          // Control: a well-formed SOCKS request for the allowed name goes through.
          const fine = await exchange(
            h.port,
            '127.0.0.1',
            Buffer.concat([
              Buffer.from([5, 1, 0, 5, 1, 0, 3, 12]),
              Buffer.from('allowed.test'),
              Buffer.from([web.port >> 8, web.port & 0xff]),
              Buffer.from('GET /hello HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n'),
            ]),
          );
          assert.deepEqual([...fine.data.subarray(0, 4)], [5, 0, 5, 0]);
          assert.match(fine.data.toString(), /hello from upstream/);
        } finally {
          await h.close();
        }
      });
    });

    describe('load and shutdown', () => {
      it('serves 200 concurrent tunnels and 200 concurrent refusals without leaking sockets', async () => {
        const h = await startProxy({ allow: ALLOW });
        try {
          const baseline = openFds();
          const allowed = Array.from({ length: 200 }, () => tunnelGet(h.port, 'allowed.test', '/bytes/65536'));
          const denied = Array.from({ length: 200 }, () => tunnelGet(h.port, 'denied.test', '/bytes/65536'));
          const results = await Promise.all(allowed);
          const refusals = await Promise.all(denied);
          assert.ok(results.every((r) => r.status === 'HTTP/1.1 200 Connection established' && r.bodyBytes === 65536));
          assert.ok(refusals.every((r) => r.status.startsWith('HTTP/1.1 403 ')));
          assert.equal(h.proxy.denials.length, 200);
          await waitFor(() => h.proxy.stats.openSockets === 0 && h.proxy.stats.activeRelays === 0, 10_000, 'proxy sockets closed');
          assert.equal(h.proxy.stats.relayed, 200);
          await waitFor(() => activeNativeRelays() === 0, 10_000, 'relay threads finished');
          await waitFor(() => activeNativeFronts().connections === 0, 10_000, 'front connections closed');
          await waitFor(() => openFds() <= baseline, 10_000, `fd count back to ${baseline}`);
        } finally {
          await h.close();
        }
      });

      it('close() ends running relays and closes every socket it owns', async () => {
        const h = await startProxy({ allow: ALLOW });
        const clients: net.Socket[] = [];
        const closed: Promise<void>[] = [];
        for (let i = 0; i < 5; i++) {
          const s = net.connect(h.port, '127.0.0.1');
          s.on('error', () => {});
          s.on('connect', () => s.write(`CONNECT allowed.test:${web.port} HTTP/1.1\r\n\r\nGET /bytes/${1 << 30} HTTP/1.1\r\nHost: a\r\n\r\n`));
          closed.push(new Promise<void>((r) => s.once('close', () => r())));
          s.once('data', () => s.pause()); // take a little, then stall: the relay stays busy
          clients.push(s);
        }
        await waitFor(() => h.proxy.stats.activeRelays === 5, 10_000, 'five relays running');
        await h.proxy.close();
        assert.equal(h.proxy.stats.openSockets, 0);
        assert.equal(h.proxy.stats.activeRelays, 0);
        for (const s of clients) s.resume();
        await Promise.all(closed);
        await waitFor(() => activeNativeRelays() === 0, 5000, 'relay threads finished');
        // A closed proxy refuses new work.
        assert.throws(() => h.proxy.serveProxy(net.createServer()), /closed/);
      });
    });
  });
}
