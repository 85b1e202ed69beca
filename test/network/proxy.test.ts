// The proxy on real loopback sockets, driven by curl and raw clients. Each refusal test also runs
// the same probe with the rule relaxed, to show the probe sees an escape when there is one.

import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import * as dgram from 'node:dgram';
import { Resolver } from 'node:dns/promises';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import * as net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';

import { DnsRcode, DnsType } from '../../src/network/dns-message.js';
import { EgressProxy, type EgressProxyOptions } from '../../src/network/proxy.js';
import {
  PROXY_VARIANTS,
  type TlsUpstream,
  type Upstream,
  askDns,
  curl,
  exchange,
  startHttpUpstream,
  startProxy,
  startTlsUpstream,
} from './helpers.js';

let web: Upstream;
let tls: TlsUpstream;

before(async () => {
  web = await startHttpUpstream();
  tls = await startTlsUpstream();
});
after(async () => {
  await web.close();
  await tls.close();
});

/** The I/O configuration under test (set per variant below). */
let variantOpts: Partial<EgressProxyOptions> = {};

/** Run `probe` against a proxy with these rules; always closes the proxy. */
async function withProxy<T>(allow: string[], deny: string[], probe: (port: number, proxy: EgressProxy) => Promise<T>): Promise<T> {
  const h = await startProxy({ ...variantOpts, allow, deny });
  try {
    return await probe(h.port, h.proxy);
  } finally {
    await h.close();
  }
}

for (const variant of PROXY_VARIANTS) {
  describe(variant.name, () => {
    before(() => {
      variantOpts = variant.opts;
    });

    describe('plain HTTP through the proxy', () => {
      it('forwards an allowed name and rewrites Host to the URL authority', async () => {
        await withProxy(['allowed.test', '127.0.0.1'], [], async (port) => {
          const r = await curl(['-x', `http://127.0.0.1:${port}`, '-H', 'Host: evil.test', `http://allowed.test:${web.port}/hello`]);
          assert.equal(r.code, 0, r.stderr);
          assert.equal(r.stdout, `hello from upstream, host=allowed.test:${web.port}\n`);
        });
      });

      it('refuses a name not in the allow list with a 403 that says how to allow it', async () => {
        const before = web.seen.length;
        await withProxy(['allowed.test', '127.0.0.1'], [], async (port, proxy) => {
          const r = await curl(['-i', '-x', `http://127.0.0.1:${port}`, `http://denied.test:${web.port}/hello`]);
          assert.equal(r.code, 0, r.stderr);
          assert.match(r.stdout, /^HTTP\/1\.1 403 Forbidden by cordon: denied\.test:\d+ is not in the network allow list\r\n/);
          assert.ok(
            r.stdout.endsWith(`\r\n\r\ncordon: denied.test:${web.port} is not in the network allow list; add --allow-domain denied.test or network.allow in the policy\n`),
            r.stdout,
          );
          assert.equal(web.seen.length, before, 'the upstream never saw the request');
          assert.equal(proxy.denials.length, 1);
          assert.deepEqual(
            { ...proxy.denials[0], time: 0 },
            {
              host: 'denied.test',
              port: web.port,
              rule: null,
              reason: `denied.test:${web.port} is not in the network allow list`,
              fix: 'add --allow-domain denied.test or network.allow in the policy',
              protocol: 'http',
              time: 0,
            },
          );
        });
        // Control: the same probe reaches the upstream once the name is allowed.
        await withProxy(['denied.test', '127.0.0.1'], [], async (port) => {
          const r = await curl(['-x', `http://127.0.0.1:${port}`, `http://denied.test:${web.port}/hello`]);
          assert.equal(r.code, 0, r.stderr);
          assert.match(r.stdout, /^hello from upstream/);
        });
      });

      it('lets a deny rule win over an allow rule and names the rule', async () => {
        await withProxy(['*.test', '127.0.0.1'], ['denied.test'], async (port, proxy) => {
          const denied = await curl(['-x', `http://127.0.0.1:${port}`, `http://denied.test:${web.port}/hello`]);
          assert.match(denied.stdout, /matches the network deny rule "denied\.test"; the policy's network\.deny list blocks it/);
          const allowed = await curl(['-x', `http://127.0.0.1:${port}`, `http://allowed.test:${web.port}/hello`]);
          assert.match(allowed.stdout, /^hello from upstream/);
          assert.equal(proxy.denials[0]?.rule, 'denied.test');
        });
      });

      it('refuses an allowed name that resolves to loopback, unless the address is allowed explicitly', async () => {
        const before = web.seen.length;
        await withProxy(['rebind.test'], [], async (port, proxy) => {
          const r = await curl(['-x', `http://127.0.0.1:${port}`, `http://rebind.test:${web.port}/hello`]);
          assert.equal(
            r.stdout,
            'cordon: rebind.test resolves to 127.0.0.1, a loopback address (loopback 127.0.0.0/8), refused unless allowed explicitly; ' +
              'to allow that address, add --allow-domain 127.0.0.1 or network.allow in the policy\n',
          );
          assert.equal(web.seen.length, before);
          assert.equal(proxy.denials[0]?.protocol, 'http');
        });
        await withProxy(['rebind.test', '127.0.0.1'], [], async (port) => {
          const r = await curl(['-x', `http://127.0.0.1:${port}`, `http://rebind.test:${web.port}/hello`]);
          assert.match(r.stdout, /^hello from upstream/);
        });
      });

      it('refuses cloud metadata by name and by any IPv4 spelling, even under "*"', async () => {
        await withProxy(['*'], [], async (port, proxy) => {
          for (const url of ['http://metadata.test/latest/meta-data/', 'http://2852039166/latest/', 'http://169.254.169.254/', 'http://0xa9.0xfe.0xa9.0xfe/']) {
            const r = await curl(['-x', `http://127.0.0.1:${port}`, url]);
            assert.match(r.stdout, /cloud metadata address/, url);
          }
          assert.equal(proxy.denials.length, 4);
          assert.ok(proxy.denials.every((d) => d.reason.includes('169.254.169.254')));
        });
      });

      it('maps upstream failures to 502 with a reason', async () => {
        const closed = net.createServer();
        await new Promise<void>((r) => closed.listen(0, '127.0.0.1', () => r()));
        const deadPort = (closed.address() as net.AddressInfo).port;
        await new Promise<void>((r) => closed.close(() => r()));
        await withProxy(['*.test', '127.0.0.1'], [], async (port) => {
          const refused = await curl(['-i', '-x', `http://127.0.0.1:${port}`, `http://allowed.test:${deadPort}/`]);
          assert.match(refused.stdout, /^HTTP\/1\.1 502 Bad Gateway/);
          assert.match(refused.stdout, /could not connect to allowed\.test:\d+ \(127\.0\.0\.1\): connection refused/);
          const unknown = await curl(['-i', '-x', `http://127.0.0.1:${port}`, 'http://unknown.test/']);
          assert.match(unknown.stdout, /^HTTP\/1\.1 502 Bad Gateway/);
          assert.match(unknown.stdout, /could not resolve unknown\.test \(ENOTFOUND\)/);
        });
      });

      it('relays request bodies and refuses origin-form requests', async () => {
        await withProxy(['allowed.test', '127.0.0.1'], [], async (port) => {
          const dir = mkdtempSync(join(tmpdir(), 'cordon-body-'));
          const body = randomBytes(300_000).toString('hex');
          writeFileSync(join(dir, 'body'), body);
          try {
            const r = await curl(['-x', `http://127.0.0.1:${port}`, '--data-binary', `@${join(dir, 'body')}`, `http://allowed.test:${web.port}/echo`]);
            assert.equal(r.code, 0, r.stderr);
            assert.equal(r.stdout, body);
          } finally {
            rmSync(dir, { recursive: true, force: true });
          }
          const origin = await exchange(port, '127.0.0.1', 'GET /hello HTTP/1.1\r\nHost: allowed.test\r\n\r\n');
          assert.match(origin.data.toString(), /^HTTP\/1\.1 400 Bad Request[\s\S]*request an absolute URL/);
        });
      });
    });

    describe('CONNECT', () => {
      it('tunnels TLS to an allowed name (certificate checked end to end)', async () => {
        await withProxy(['allowed.test', '127.0.0.1'], [], async (port) => {
          const r = await curl(['--cacert', tls.certFile, '-x', `http://127.0.0.1:${port}`, `https://allowed.test:${tls.port}/hello`]);
          assert.equal(r.code, 0, r.stderr);
          assert.equal(r.stdout, `hello from upstream, host=allowed.test:${tls.port}\n`);
        });
      });

      it('refuses a denied name with a status line that carries the reason', async () => {
        const before = tls.seen.length;
        await withProxy(['allowed.test', '127.0.0.1'], [], async (port, proxy) => {
          const r = await curl(['--cacert', tls.certFile, '-x', `http://127.0.0.1:${port}`, `https://denied.test:${tls.port}/hello`]);
          assert.equal(r.code, 56);
          assert.match(r.stderr, /CONNECT tunnel failed, response 403/);
          const raw = await exchange(port, '127.0.0.1', `CONNECT denied.test:${tls.port} HTTP/1.1\r\nHost: denied.test\r\n\r\n`);
          assert.match(raw.data.toString(), new RegExp(`^HTTP/1\\.1 403 Forbidden by cordon: denied\\.test:${tls.port} is not in the network allow list\\r\\n`));
          assert.equal(tls.seen.length, before);
          assert.deepEqual(proxy.denials.map((d) => d.protocol), ['connect', 'connect']);
        });
        await withProxy(['denied.test', '127.0.0.1'], [], async (port) => {
          const r = await curl(['--cacert', tls.certFile, '-x', `http://127.0.0.1:${port}`, `https://denied.test:${tls.port}/hello`]);
          assert.equal(r.code, 0, r.stderr);
        });
      });

      it('forwards bytes the client sent right behind the CONNECT head', async () => {
        await withProxy(['allowed.test', '127.0.0.1'], [], async (port) => {
          const r = await exchange(
            port,
            '127.0.0.1',
            `CONNECT allowed.test:${web.port} HTTP/1.1\r\n\r\nGET /hello HTTP/1.1\r\nHost: allowed.test\r\nConnection: close\r\n\r\n`,
          );
          const text = r.data.toString();
          assert.match(text, /^HTTP\/1\.1 200 Connection established\r\n\r\nHTTP\/1\.1 200 OK\r\n/);
          assert.match(text, /hello from upstream/);
        });
      });
    });

    describe('SOCKS5', () => {
      it('connects to an allowed name (socks5h) and an allowed IPv4 literal (socks5)', async () => {
        await withProxy(['allowed.test', '127.0.0.1'], [], async (port) => {
          const byName = await curl(['-x', `socks5h://127.0.0.1:${port}`, `http://allowed.test:${web.port}/hello`]);
          assert.equal(byName.code, 0, byName.stderr);
          assert.match(byName.stdout, /^hello from upstream/);
          const byAddress = await curl(['-x', `socks5://127.0.0.1:${port}`, `http://127.0.0.1:${web.port}/hello`]);
          assert.equal(byAddress.code, 0, byAddress.stderr);
        });
      });

      it('connects to an IPv6 upstream by name', async () => {
        const v6 = await startHttpUpstream('::1');
        try {
          await withProxy(['v6.test', '[::1]'], [], async (port) => {
            const r = await curl(['-x', `socks5h://127.0.0.1:${port}`, `http://v6.test:${v6.port}/hello`]);
            assert.equal(r.code, 0, r.stderr);
            assert.match(r.stdout, /^hello from upstream/);
          });
        } finally {
          await v6.close();
        }
      });

      it('refuses a denied name with reply 0x02 (not allowed by ruleset)', async () => {
        const before = web.seen.length;
        await withProxy(['allowed.test', '127.0.0.1'], [], async (port, proxy) => {
          const r = await curl(['-x', `socks5h://127.0.0.1:${port}`, `http://denied.test:${web.port}/hello`]);
          assert.equal(r.code, 97);
          assert.match(r.stderr, /\(2\)/);
          assert.equal(web.seen.length, before);
          assert.equal(proxy.denials[0]?.protocol, 'socks5');
          const rebind = await curl(['-x', `socks5h://127.0.0.1:${port}`, 'http://metadata.test/']);
          assert.match(rebind.stderr, /\(2\)/);
        });
        await withProxy(['denied.test', '127.0.0.1'], [], async (port) => {
          const r = await curl(['-x', `socks5h://127.0.0.1:${port}`, `http://denied.test:${web.port}/hello`]);
          assert.equal(r.code, 0, r.stderr);
        });
      });
    });

    describe('transparent path and the in-sandbox resolver', () => {
      // The transparent listener takes the port of the connection as the upstream port. Upstream and
      // listener share a port number here, so the upstream lives on ::1 (IPv6-only) and the listener
      // on 0.0.0.0, as the launcher's listener would inside the sandbox.
      let v6web: Upstream;
      let proxy: EgressProxy;
      let transparent: net.Server;
      let dns: dgram.Socket;
      let dnsPort: number;

      before(async () => {
        v6web = await startHttpUpstream('::1', 0, true);
        proxy = new EgressProxy({
          ...variantOpts,
          allow: ['allowed.test', 'port-limited.test:1', '[::1]'],
          deny: [],
          resolve: async (h) => {
            if (h === 'allowed.test' || h === 'port-limited.test') return ['::1'];
            throw Object.assign(new Error('nx'), { code: 'ENOTFOUND' });
          },
        });
        transparent = net.createServer();
        await new Promise<void>((r) => transparent.listen({ host: '0.0.0.0', port: v6web.port }, () => r()));
        proxy.serveTransparent(transparent);
        dns = dgram.createSocket('udp4');
        await new Promise<void>((r) => dns.bind(0, '127.0.0.1', () => r()));
        dnsPort = dns.address().port;
        proxy.serveDns(dns);
      });
      after(async () => {
        await proxy.close();
        await v6web.close();
      });

      it('answers A for allowed names from the pool, no AAAA, NXDOMAIN for denied names', async () => {
        const a = await askDns(dnsPort, 'allowed.test', DnsType.A);
        assert.equal(a.readUInt16BE(2) & 0xf, DnsRcode.noError);
        assert.equal(a.readUInt16BE(6), 1);
        assert.equal(a[a.length - 4], 127);
        assert.equal(a[a.length - 3], 80);
        const aaaa = await askDns(dnsPort, 'allowed.test', DnsType.AAAA);
        assert.equal(aaaa.readUInt16BE(2) & 0xf, DnsRcode.noError);
        assert.equal(aaaa.readUInt16BE(6), 0);
        const denied = await askDns(dnsPort, 'denied.test', DnsType.A);
        assert.equal(denied.readUInt16BE(2) & 0xf, DnsRcode.nxDomain);
        await askDns(dnsPort, 'denied.test', DnsType.AAAA);
        const dnsDenials = proxy.denials.filter((d) => d.protocol === 'dns');
        assert.equal(dnsDenials.length, 1, 'one record per name, not per query');
        assert.equal(dnsDenials[0]?.host, 'denied.test');
        assert.equal(dnsDenials[0]?.port, null);
      });

      it('works with a stock resolver client (c-ares) and fails fast for denied names', async () => {
        const resolver = new Resolver({ timeout: 2000, tries: 1 });
        resolver.setServers([`127.0.0.1:${dnsPort}`]);
        const [address] = await resolver.resolve4('allowed.test');
        assert.match(address!, /^127\.80\.\d+\.\d+$/);
        await assert.rejects(resolver.resolve4('denied.test'), { code: 'ENOTFOUND' });
      });

      it('relays a plain TCP connection to a pool address to the name behind it', async () => {
        const resolver = new Resolver({ timeout: 2000, tries: 1 });
        resolver.setServers([`127.0.0.1:${dnsPort}`]);
        const [address] = await resolver.resolve4('allowed.test');
        const r = await exchange(v6web.port, address!, 'GET /hello HTTP/1.1\r\nHost: allowed.test\r\nConnection: close\r\n\r\n');
        assert.match(r.data.toString(), /^HTTP\/1\.1 200 OK[\s\S]*hello from upstream, host=allowed\.test/);
      });

      it('resets connections to addresses the resolver never handed out, and to ports not allowed', async () => {
        const seen = v6web.seen.length;
        const stray = await exchange(v6web.port, '127.80.250.250', 'GET /hello HTTP/1.1\r\nHost: x\r\n\r\n');
        assert.equal(stray.error, 'ECONNRESET');
        assert.equal(stray.data.length, 0);
        const resolver = new Resolver({ timeout: 2000, tries: 1 });
        resolver.setServers([`127.0.0.1:${dnsPort}`]);
        const [limited] = await resolver.resolve4('port-limited.test');
        const wrongPort = await exchange(v6web.port, limited!, 'GET /hello HTTP/1.1\r\nHost: x\r\n\r\n');
        assert.equal(wrongPort.error, 'ECONNRESET');
        assert.equal(v6web.seen.length, seen, 'nothing reached the upstream');
        const t = proxy.denials.filter((d) => d.protocol === 'transparent');
        assert.equal(t[0]?.host, '127.80.250.250');
        assert.match(t[0]?.reason ?? '', /is not an address cordon's resolver handed out/);
        assert.equal(t[1]?.host, 'port-limited.test');
        assert.equal(t[1]?.reason, `port-limited.test:${v6web.port} is not in the network allow list`);
      });
    });
  });
}
