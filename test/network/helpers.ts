// Test fixtures for the network layer: loopback servers, a proxy harness, a resolver the tests
// control, and bounded child processes. Everything listens on 127.0.0.1 / ::1 only.

import { execFile, spawnSync } from 'node:child_process';
import * as dgram from 'node:dgram';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import * as http from 'node:http';
import * as https from 'node:https';
import * as net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { EgressProxy, type EgressProxyOptions } from '../../src/network/proxy.js';

/** The names tests play with, and where the test resolver points them. */
export const TEST_NAMES: Record<string, string[]> = {
  'allowed.test': ['127.0.0.1'],
  'denied.test': ['127.0.0.1'],
  'rebind.test': ['127.0.0.1'],
  'metadata.test': ['169.254.169.254'],
  'registry.test': ['127.0.0.1'],
  'v6.test': ['::1'],
};

export async function testResolver(host: string): Promise<string[]> {
  const a = TEST_NAMES[host];
  if (!a) throw Object.assign(new Error(`test resolver: ${host} not found`), { code: 'ENOTFOUND' });
  return a;
}

export interface Upstream {
  port: number;
  /** Request URLs seen, in order: the proof that a request did (or did not) reach the server. */
  seen: string[];
  close(): Promise<void>;
}

function closeServer(server: net.Server): Promise<void> {
  return new Promise((resolve) => {
    server.close(() => resolve());
    (server as http.Server).closeAllConnections?.();
  });
}

const BIG = Buffer.alloc(1 << 16, 'x');

/** Routes: /hello, /bytes/N (N bytes of 'x'), POST /echo, /slow (headers, then the body later). */
function handler(seen: string[]) {
  return (req: http.IncomingMessage, res: http.ServerResponse) => {
    seen.push(req.url ?? '');
    const bytes = /^\/bytes\/(\d+)$/.exec(req.url ?? '');
    if (req.url === '/hello') {
      res.end(`hello from upstream, host=${req.headers.host}\n`);
    } else if (bytes) {
      const total = Number(bytes[1]);
      res.writeHead(200, { 'content-length': String(total) });
      let sent = 0;
      const pump = () => {
        while (sent < total) {
          const n = Math.min(BIG.length, total - sent);
          sent += n;
          if (!res.write(n === BIG.length ? BIG : BIG.subarray(0, n))) return void res.once('drain', pump);
        }
        res.end();
      };
      pump();
    } else if (req.url === '/echo') {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => res.end(Buffer.concat(chunks)));
    } else {
      res.statusCode = 404;
      res.end('not found\n');
    }
  };
}

export async function startHttpUpstream(host = '127.0.0.1', port = 0, ipv6Only = false): Promise<Upstream> {
  const seen: string[] = [];
  const server = http.createServer(handler(seen));
  server.keepAliveTimeout = 500;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen({ host, port, ipv6Only }, () => resolve());
  });
  return { port: (server.address() as net.AddressInfo).port, seen, close: () => closeServer(server) };
}

export interface TlsUpstream extends Upstream {
  /** PEM of the self-signed certificate (CN and SAN: allowed.test). */
  cert: string;
  certFile: string;
}

/** HTTPS on 127.0.0.1 with a certificate for allowed.test, made by openssl for this test run. */
export async function startTlsUpstream(): Promise<TlsUpstream> {
  const dir = mkdtempSync(join(tmpdir(), 'cordon-tls-'));
  const keyFile = join(dir, 'key.pem');
  const certFile = join(dir, 'cert.pem');
  const r = spawnSync(
    'openssl',
    ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '1', '-subj', '/CN=allowed.test',
      '-addext', 'subjectAltName=DNS:allowed.test,DNS:denied.test', '-keyout', keyFile, '-out', certFile],
    { encoding: 'utf8', timeout: 20_000 },
  );
  if (r.status !== 0) throw new Error(`openssl failed: ${r.stderr}`);
  const seen: string[] = [];
  const cert = readFileSync(certFile, 'utf8');
  const server = https.createServer({ key: readFileSync(keyFile), cert }, handler(seen));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  return {
    port: (server.address() as net.AddressInfo).port,
    seen,
    cert,
    certFile,
    close: async () => {
      await closeServer(server);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** The proxy's I/O configurations; behaviour must be the same in each. */
export const PROXY_VARIANTS: { name: string; opts: Partial<EgressProxyOptions> }[] = [
  { name: 'native accept, native relay', opts: {} },
  { name: 'Node accept, native relay', opts: { nativeAccept: false } },
  { name: 'Node accept, JS relay', opts: { byteEngine: 'js' } },
];

export interface ProxyHarness {
  proxy: EgressProxy;
  /** Port of the HTTP/SOCKS listener on 127.0.0.1. */
  port: number;
  close(): Promise<void>;
}

/** A proxy serving a listener the test created (as the sandbox launcher would hand one over). */
export async function startProxy(opts: Partial<EgressProxyOptions> & { allow: string[] }): Promise<ProxyHarness> {
  const proxy = new EgressProxy({ deny: [], resolve: testResolver, ...opts });
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  const port = (server.address() as net.AddressInfo).port;
  proxy.serveProxy(server);
  return { proxy, port, close: () => proxy.close() };
}

export interface RunResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Run a program with a hard time limit; never throws on a non-zero exit. */
export function run(file: string, args: string[], opts: { env?: NodeJS.ProcessEnv; timeoutMs?: number; cwd?: string } = {}): Promise<RunResult> {
  return new Promise((resolve) => {
    execFile(
      file,
      args,
      { env: opts.env ?? cleanEnv(), timeout: opts.timeoutMs ?? 20_000, killSignal: 'SIGKILL', maxBuffer: 16 << 20, cwd: opts.cwd, encoding: 'utf8' },
      (err, stdout, stderr) => {
        const code = err ? (typeof (err as { code?: unknown }).code === 'number' ? ((err as { code: number }).code) : null) : 0;
        resolve({ code, stdout, stderr });
      },
    );
  });
}

/** An environment without the host's proxy settings (tests set their own). */
export function cleanEnv(extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!/_proxy$/i.test(k)) env[k] = v;
  return { ...env, ...extra };
}

/** curl with a short overall limit; -sS keeps errors on stderr. */
export function curl(args: string[], env?: NodeJS.ProcessEnv): Promise<RunResult> {
  return run('curl', ['-sS', '--max-time', '15', ...args], { env: env ?? cleanEnv() });
}

export function openFds(): number {
  return readdirSync('/proc/self/fd').length;
}

/** A DNS query for one name. */
export function dnsQuery(id: number, name: string, type: number): Buffer {
  const labels = name.split('.').filter(Boolean).map((l) => Buffer.concat([Buffer.from([l.length]), Buffer.from(l, 'latin1')]));
  const header = Buffer.alloc(12);
  header.writeUInt16BE(id, 0);
  header.writeUInt16BE(0x0100, 2); // RD
  header.writeUInt16BE(1, 4);
  const tail = Buffer.alloc(4);
  tail.writeUInt16BE(type, 0);
  tail.writeUInt16BE(1, 2);
  return Buffer.concat([header, ...labels, Buffer.from([0]), tail]);
}

/** Send one DNS query to 127.0.0.1:port and return the raw answer (bounded wait). */
export async function askDns(port: number, name: string, type: number): Promise<Buffer> {
  const sock = dgram.createSocket('udp4');
  try {
    return await new Promise<Buffer>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no DNS answer for ${name}`)), 5000);
      sock.once('message', (m) => {
        clearTimeout(timer);
        resolve(m);
      });
      sock.send(dnsQuery(7, name, type), port, '127.0.0.1');
    });
  } finally {
    sock.close();
  }
}

/** Connect, send bytes, collect everything until the peer closes (bounded). */
export function exchange(port: number, host: string, data: Buffer | string, timeoutMs = 10_000): Promise<{ data: Buffer; error: string | null }> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    const s = net.connect({ port, host });
    const timer = setTimeout(() => {
      s.destroy();
      resolve({ data: Buffer.concat(chunks), error: 'timeout' });
    }, timeoutMs);
    s.on('connect', () => s.write(data));
    s.on('data', (c: Buffer) => chunks.push(c));
    s.on('error', (e: Error & { code?: string }) => {
      clearTimeout(timer);
      resolve({ data: Buffer.concat(chunks), error: e.code ?? e.message });
    });
    s.on('close', () => {
      clearTimeout(timer);
      resolve({ data: Buffer.concat(chunks), error: null });
    });
  });
}

/** Wait until check() is true, polling, with a hard bound. */
export async function waitFor(check: () => boolean, timeoutMs = 5000, what = 'condition'): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}
