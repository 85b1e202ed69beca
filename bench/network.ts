// Network figures for `npm run bench`, measured in one run on loopback: a large download and the
// time to first byte of fresh connections, direct and through each proxy (cordon's with the
// native relay and with its JS fallback, srt's, Codex's managed proxy), plus what the transparent
// path and the in-sandbox resolver cost.
//
// Every server runs in its own process (so no proxy shares an event loop with the server or the
// driver): this file is also the entry point of those processes (`--upstream`, `--cordon`,
// `--srt`). The driver interleaves the columns round-robin so load drift hits all of them alike.

import { type ChildProcess, execFile, spawn } from 'node:child_process';
import * as dgram from 'node:dgram';
import { existsSync, mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import * as http from 'node:http';
import * as net from 'node:net';
import { cpus, release } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

import { EgressProxy } from '../src/network/proxy.js';
import { nativeUnavailableReason } from '../src/network/relay.js';
import { PEERS_DIR, findOnPath, writableStateDir } from './layout.js';
import { ensurePeersInstalled } from './peers.js';

const SELF = fileURLToPath(import.meta.url);
const GiB = 1 << 30;
const BENCH_NAME = 'bench.test';

// ------------------------------------------------------------------------------------------------
// Server processes

/** An HTTP server sending /bytes/N from a 1 MiB buffer, on 127.0.0.1 and (IPv6-only) on ::1. */
async function serveUpstream(): Promise<void> {
  const chunk = Buffer.alloc(1 << 20, 0x61);
  const handler = (req: http.IncomingMessage, res: http.ServerResponse) => {
    const m = /^\/bytes\/(\d+)$/.exec(req.url ?? '');
    const total = m ? Number(m[1]) : 0;
    res.writeHead(200, { 'content-length': String(total), 'content-type': 'application/octet-stream' });
    let sent = 0;
    const pump = () => {
      while (sent < total) {
        const n = Math.min(chunk.length, total - sent);
        sent += n;
        if (!res.write(n === chunk.length ? chunk : chunk.subarray(0, n))) return void res.once('drain', pump);
      }
      res.end();
    };
    pump();
  };
  const v4 = http.createServer(handler);
  const v6 = http.createServer(handler);
  await new Promise<void>((r) => v4.listen(0, '127.0.0.1', () => r()));
  await new Promise<void>((r) => v6.listen({ host: '::1', port: 0, ipv6Only: true }, () => r()));
  report({ v4Port: (v4.address() as net.AddressInfo).port, v6Port: (v6.address() as net.AddressInfo).port });
}

/**
 * cordon's proxy serving listeners made here, as the launcher would hand them over: the proxy
 * listener, a transparent listener on 0.0.0.0 (same port number as the upstream's IPv6 one) and
 * the resolver. `engine` picks the byte path.
 */
async function serveCordon(engine: 'native' | 'js', transparentPort: number): Promise<void> {
  const proxy = new EgressProxy({
    allow: [BENCH_NAME, '127.0.0.1', '[::1]'],
    deny: [],
    byteEngine: engine,
    resolve: async (host) => (host === BENCH_NAME ? ['::1'] : ['127.0.0.1']),
  });
  const listener = net.createServer();
  await new Promise<void>((r) => listener.listen(0, '127.0.0.1', () => r()));
  // Read before serving: the proxy takes the server over (the addon accepts, Node's copy closes).
  const port = (listener.address() as net.AddressInfo).port;
  proxy.serveProxy(listener);
  const transparent = net.createServer();
  await new Promise<void>((r) => transparent.listen(transparentPort, '0.0.0.0', () => r()));
  proxy.serveTransparent(transparent);
  const dns = dgram.createSocket('udp4');
  await new Promise<void>((r) => dns.bind(0, '127.0.0.1', () => r()));
  proxy.serveDns(dns);
  report({ port, dnsPort: dns.address().port });
}

/** srt's proxy (library), allowing the loopback upstream; it wants its session token. */
async function serveSrt(): Promise<void> {
  const library = join(PEERS_DIR, 'node_modules', '@anthropic-ai', 'sandbox-runtime', 'dist', 'index.js');
  const { SandboxManager } = (await import(library)) as {
    SandboxManager: {
      initialize(config: object): Promise<void>;
      waitForNetworkInitialization(): Promise<boolean>;
      getProxyPort(): number | undefined;
      getProxyAuthToken(): string | undefined;
    };
  };
  await SandboxManager.initialize({
    network: { allowedDomains: ['127.0.0.1'], deniedDomains: [] },
    filesystem: { denyRead: [], allowWrite: [], denyWrite: [] },
  });
  await SandboxManager.waitForNetworkInitialization();
  report({ port: SandboxManager.getProxyPort(), token: SandboxManager.getProxyAuthToken() });
}

function report(value: object): void {
  process.stdout.write(JSON.stringify(value) + '\n');
  // Serve until the driver closes our stdin (or kills us).
  process.stdin.on('end', () => process.exit(0));
  process.stdin.resume();
}

// ------------------------------------------------------------------------------------------------
// Driver

interface Server {
  child: ChildProcess;
  info: Record<string, unknown>;
  stop(): void;
}

/** Start a server process and wait for the JSON line it prints (bounded). */
function startServer(file: string, args: string[], env?: NodeJS.ProcessEnv, cwd?: string): Promise<Server> {
  return new Promise((resolve, reject) => {
    const child = spawn(file, args, { stdio: ['pipe', 'pipe', 'pipe'], env: env ?? process.env, cwd, detached: true });
    let out = '';
    let err = '';
    const stop = () => {
      try {
        process.kill(-child.pid!, 'SIGKILL');
      } catch {
        // already gone
      }
    };
    const timer = setTimeout(() => {
      stop();
      reject(new Error(`${args.join(' ')}: no answer within 30 s ${err.split('\n')[0] ?? ''}`));
    }, 30_000);
    child.stderr!.on('data', (c: Buffer) => (err += c.toString()));
    child.stdout!.on('data', (c: Buffer) => {
      out += c.toString();
      const line = out.split('\n')[0];
      if (out.includes('\n') && line) {
        clearTimeout(timer);
        try {
          resolve({ child, info: JSON.parse(line) as Record<string, unknown>, stop });
        } catch {
          stop();
          reject(new Error(`unexpected output: ${line.slice(0, 200)}`));
        }
      }
    });
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`exited with ${code}: ${(err.trim().split('\n').pop() ?? '').slice(0, 200)}`));
    });
  });
}

function curl(args: string[], timeoutMs = 120_000): Promise<{ ok: boolean; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile('curl', ['-sS', '-o', '/dev/null', ...args], { timeout: timeoutMs, killSignal: 'SIGKILL', encoding: 'utf8', env: withoutProxyEnv() }, (e, stdout, stderr) =>
      resolve({ ok: !e, stdout, stderr }),
    );
  });
}

function withoutProxyEnv(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!/_proxy$/i.test(k)) env[k] = v;
  return env;
}

/** A way to fetch a URL: extra curl arguments (proxy flags) and how to name the target. */
interface Column {
  id: string;
  title: string;
  /** curl arguments that route through this path. */
  args: string[];
  /** Base URL of the upstream as this path reaches it. */
  base: string;
  note?: string;
}

function median(values: number[]): number {
  const s = [...values].sort((a, b) => a - b);
  return s.length === 0 ? NaN : s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
}

/** Descendant pids of a process (to find the peer process that owns a listener). */
function descendants(root: number): Set<number> {
  const parent = new Map<number, number>();
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      parent.set(Number(entry), Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]));
    } catch {
      // exited meanwhile
    }
  }
  const out = new Set<number>([root]);
  for (let grew = true; grew; ) {
    grew = false;
    for (const [pid, ppid] of parent) if (!out.has(pid) && out.has(ppid)) (out.add(pid), (grew = true));
  }
  return out;
}

/** Loopback TCP ports some process in the tree listens on (via ss). */
async function listeningPorts(root: number): Promise<number[]> {
  const ss = findOnPath('ss');
  if (!ss) return [];
  const text = await new Promise<string>((resolve) => execFile(ss, ['-ltnpH'], { encoding: 'utf8', timeout: 10_000 }, (_e, stdout) => resolve(stdout ?? '')));
  const pids = descendants(root);
  const ports: number[] = [];
  for (const line of text.split('\n')) {
    const pid = /pid=(\d+)/.exec(line);
    const local = /127\.0\.0\.1:(\d+)/.exec(line);
    if (pid && local && pids.has(Number(pid[1]))) ports.push(Number(local[1]));
  }
  return ports;
}

/**
 * Codex's managed proxy lives in the host-side `codex` process while a sandboxed command runs:
 * run `sleep` under `codex sandbox` with a profile whose network allows the loopback upstream,
 * and find the proxy's listener.
 */
async function startCodexProxy(upstreamPort: number): Promise<{ server: Server; port: number }> {
  const cli = join(PEERS_DIR, 'node_modules', '@openai', 'codex', 'bin', 'codex.js');
  if (!existsSync(cli)) throw new Error('@openai/codex not installed in ' + PEERS_DIR);
  const home = writableStateDir('codex-network-home');
  const workspace = join(home, 'workspace');
  mkdirSync(workspace, { recursive: true });
  writeFileSync(
    join(home, 'config.toml'),
    [
      "# Written by cordon's bench (bench/network.ts): the managed proxy allowing the loopback upstream.",
      '[features]',
      'network_proxy = true',
      '[permissions.netbench.filesystem]',
      '":root" = "read"',
      '":tmpdir" = "write"',
      '[permissions.netbench.filesystem.":workspace_roots"]',
      '"." = "write"',
      '[permissions.netbench.network]',
      'enabled = true',
      'enable_socks5 = false',
      'allow_local_binding = true',
      'mode = "full"',
      '[permissions.netbench.network.domains]',
      '"127.0.0.1" = "allow"',
      '',
    ].join('\n'),
  );
  // `codex sandbox` prints nothing useful here; a wrapper line makes startServer's protocol work.
  const script = `const { spawn } = require('child_process');
const c = spawn(process.execPath, [${JSON.stringify(cli)}, 'sandbox', '-P', 'netbench', '-C', ${JSON.stringify(workspace)}, '--', 'sleep', '900'], { stdio: 'ignore' });
console.log(JSON.stringify({ pid: c.pid }));
process.stdin.on('end', () => { try { c.kill('SIGKILL'); } catch {} process.exit(0); }); process.stdin.resume();`;
  const server = await startServer(process.execPath, ['-e', script], { ...withoutProxyEnv(), CODEX_HOME: home }, workspace);
  const deadline = Date.now() + 20_000;
  while (Date.now() < deadline) {
    const ports = await listeningPorts(server.child.pid!);
    for (const port of ports) {
      const probe = await curl(['-w', '%{http_code}', '-x', `http://127.0.0.1:${port}`, `http://127.0.0.1:${upstreamPort}/bytes/1`], 10_000);
      if (probe.stdout === '200') return { server, port };
    }
    await new Promise((r) => setTimeout(r, 250));
  }
  server.stop();
  throw new Error('no listener of the codex process answered as a proxy within 20 s');
}

export interface NetworkBenchOptions {
  /** Scales the number of runs (1 = 3 downloads and 60 fresh GETs per column). */
  runsScale?: number;
  /** Bytes per download (default 1 GiB). */
  downloadBytes?: number;
}

export async function runNetworkBench(options: NetworkBenchOptions = {}): Promise<string> {
  if (!findOnPath('curl')) return '_curl is not installed; no network figures._';
  const scale = options.runsScale ?? 1;
  const downloads = Math.max(1, Math.round(3 * scale));
  const fresh = Math.max(10, Math.round(150 * scale));
  const bytes = options.downloadBytes ?? GiB;
  const notes: string[] = [];
  // Idempotent: installs srt and Codex into .bench/peers only when they are missing.
  const installNote = await ensurePeersInstalled(true);
  if (installNote) notes.push(installNote);
  const servers: Server[] = [];
  try {
    const upstream = await startServer(process.execPath, [SELF, '--upstream']);
    servers.push(upstream);
    const v4 = upstream.info.v4Port as number;
    const v6 = upstream.info.v6Port as number;
    const direct = `http://127.0.0.1:${v4}`;

    const columns: Column[] = [{ id: 'direct', title: 'direct (no proxy)', args: [], base: direct }];
    const unavailable = nativeUnavailableReason();
    const cordonEngines: ('native' | 'js')[] = unavailable === null ? ['native', 'js'] : ['js'];
    if (unavailable !== null) notes.push(`cordon's native relay is unavailable (${unavailable}); only the JS relay was measured.`);
    let transparent: { base: string; dnsPort: number } | null = null;
    for (const engine of cordonEngines) {
      // The transparent listener shares the IPv6 upstream's port number, so only one can exist.
      const cordon = await startServer(process.execPath, [SELF, '--cordon', engine, String(engine === cordonEngines[0] ? v6 : 0)]);
      servers.push(cordon);
      const proxy = `http://127.0.0.1:${cordon.info.port}`;
      columns.push({ id: `cordon-${engine}-http`, title: `cordon, HTTP forward (${engine} relay)`, args: ['-x', proxy], base: direct });
      columns.push({ id: `cordon-${engine}-connect`, title: `cordon, CONNECT tunnel (${engine} relay)`, args: ['-p', '-x', proxy], base: direct });
      if (engine === cordonEngines[0]) {
        const address = await poolAddress(cordon.info.dnsPort as number, BENCH_NAME);
        transparent = { base: `http://${BENCH_NAME}:${v6}`, dnsPort: cordon.info.dnsPort as number };
        columns.push({
          id: `cordon-transparent`,
          title: `cordon, transparent (${engine} relay)`,
          args: ['--noproxy', '*', '--resolve', `${BENCH_NAME}:${v6}:${address}`],
          base: transparent.base,
          note: 'plain TCP to a pool address; the IPv6 upstream',
        });
        columns.push({ id: 'direct-v6', title: 'direct to the IPv6 upstream', args: [], base: `http://[::1]:${v6}` });
      }
    }
    try {
      const srt = await startServer(process.execPath, [SELF, '--srt']);
      servers.push(srt);
      const proxy = `http://bench:${srt.info.token}@127.0.0.1:${srt.info.port}`;
      columns.push({ id: 'srt-http', title: 'srt, HTTP forward', args: ['-x', proxy], base: direct });
      columns.push({ id: 'srt-connect', title: 'srt, CONNECT tunnel', args: ['-p', '-x', proxy], base: direct });
    } catch (e) {
      notes.push(`srt column skipped: ${(e as Error).message.split('\n')[0]}`);
    }
    try {
      const codex = await startCodexProxy(v4);
      servers.push(codex.server);
      const proxy = `http://127.0.0.1:${codex.port}`;
      columns.push({ id: 'codex-http', title: 'Codex managed proxy, HTTP forward', args: ['-x', proxy], base: direct });
      columns.push({ id: 'codex-connect', title: 'Codex managed proxy, CONNECT tunnel', args: ['-p', '-x', proxy], base: direct });
    } catch (e) {
      notes.push(`Codex column skipped: ${(e as Error).message.split('\n')[0]}`);
    }

    // Check every column works before measuring it.
    const working: Column[] = [];
    for (const c of columns) {
      const r = await curl(['-w', '%{http_code}', ...c.args, `${c.base}/bytes/10`], 20_000);
      if (r.stdout === '200') working.push(c);
      else notes.push(`${c.title}: skipped, a test request failed (${r.stderr.trim().split('\n')[0] || `HTTP ${r.stdout}`})`);
    }

    const speeds = new Map<string, number[]>(working.map((c) => [c.id, []]));
    const ttfb = new Map<string, number[]>(working.map((c) => [c.id, []]));
    for (let round = 0; round < downloads; round++) {
      for (let i = 0; i < working.length; i++) {
        const c = working[(i + round) % working.length]!;
        const r = await curl(['-w', '%{speed_download}', ...c.args, `${c.base}/bytes/${bytes}`], 300_000);
        if (r.ok) speeds.get(c.id)!.push(Number(r.stdout));
      }
    }
    for (let round = 0; round < fresh; round++) {
      for (let i = 0; i < working.length; i++) {
        const c = working[(i + round) % working.length]!;
        const r = await curl(['-w', '%{time_starttransfer}', ...c.args, `${c.base}/bytes/100`], 20_000);
        if (r.ok) ttfb.get(c.id)!.push(Number(r.stdout) * 1000);
      }
    }
    const dnsMicros = transparent ? await dnsRoundTrip(transparent.dnsPort, 500) : null;
    const setupMicros = await proxySetupCost(200);
    const deadPort = await closedPort();
    const connectToClosed = new Map<string, string>();
    for (const c of working.filter((w) => w.id.endsWith('-connect'))) {
      const r = await curl(['-w', '%{http_code} %{http_connect}', ...c.args, `http://127.0.0.1:${deadPort}/`], 20_000);
      const reason = /response (\d{3})/.exec(r.stderr)?.[1];
      connectToClosed.set(c.title, reason ? `answers ${reason}` : /reset|Recv failure|Empty reply/i.test(r.stderr) ? 'answers 200, then resets' : r.stderr.trim().split('\n')[0] ?? '?');
    }

    const directSpeed = median(speeds.get('direct') ?? []);
    const directTtfb = median(ttfb.get('direct') ?? []);
    const directV6Speed = median(speeds.get('direct-v6') ?? []);
    const directV6Ttfb = median(ttfb.get('direct-v6') ?? []);
    const lines = [
      `Loopback, ${cpus().length} CPU (${cpus()[0]?.model ?? 'unknown'}), Linux ${release()}, Node ${process.version}. ` +
        `Download: ${(bytes / GiB).toFixed(bytes >= GiB ? 0 : 2)} GiB with curl, median of ${downloads}; ` +
        `time to first byte: curl's time_starttransfer of a fresh connection (one curl process per request) for 100 bytes, median of ${fresh}. ` +
        'Columns run interleaved round-robin; servers and proxies each run in their own process. ' +
        'Every proxy is reached on the host (no sandbox): this isolates the proxy itself.',
      '',
      '| path | download GB/s | × direct | first byte, ms (p25–p75) | added per connection, ms |',
      '|---|---:|---:|---:|---:|',
    ];
    for (const c of working) {
      const s = median(speeds.get(c.id) ?? []);
      const samples = ttfb.get(c.id) ?? [];
      const t = median(samples);
      const v6 = c.id === 'cordon-transparent' || c.id === 'direct-v6';
      const refSpeed = v6 ? directV6Speed : directSpeed;
      const refTtfb = v6 ? directV6Ttfb : directTtfb;
      const isReference = c.id === 'direct' || c.id === 'direct-v6';
      lines.push(
        `| ${c.title} | ${(s / 1e9).toFixed(2)} | ${isReference ? '1' : (s / refSpeed).toFixed(2)} | ${t.toFixed(2)} (${quantile(samples, 0.25).toFixed(2)}–${quantile(samples, 0.75).toFixed(2)}) | ${isReference ? '—' : (t - refTtfb).toFixed(2)} |`,
      );
    }
    lines.push('');
    if (dnsMicros !== null) lines.push(`In-sandbox resolver (cordon's serveDns): median ${dnsMicros.toFixed(0)} µs per A query round trip (500 queries).`, '');
    lines.push(
      `Proxy setup per sandbox on the host (new EgressProxy, serve a proxy, a transparent and a DNS socket, close): median ${setupMicros.toFixed(0)} µs (200 rounds, in process).`,
      '',
    );
    if (connectToClosed.size > 0) {
      lines.push(
        'CONNECT to a closed port (what a client learns when the upstream is down; a proxy that answers 200 before dialling saves that dial from its handshake): ' +
          [...connectToClosed].map(([title, what]) => `${title}: ${what}`).join('; ') +
          '.',
        '',
      );
    }
    lines.push(
      'The transparent row is measured against the direct IPv6 row (its upstream). Per-command cost of network rules in a sandbox (listener hand-over) belongs to the sandbox columns once the launcher serves the bridge.',
    );
    for (const n of notes) lines.push('', `_${n}_`);
    return lines.join('\n');
  } finally {
    for (const s of servers) s.stop();
  }
}

function quantile(values: number[], q: number): number {
  const s = [...values].sort((a, b) => a - b);
  return s.length === 0 ? NaN : s[Math.min(s.length - 1, Math.floor(q * s.length))]!;
}

/** A loopback port nothing listens on. */
async function closedPort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  const port = (server.address() as net.AddressInfo).port;
  await new Promise<void>((r) => server.close(() => r()));
  return port;
}

/** What a sandbox's network bridge costs the host process to set up and tear down. */
async function proxySetupCost(rounds: number): Promise<number> {
  const times: number[] = [];
  for (let i = 0; i < rounds; i++) {
    const listener = net.createServer();
    const transparent = net.createServer();
    const dns = dgram.createSocket('udp4');
    await new Promise<void>((r) => listener.listen(0, '127.0.0.1', () => r()));
    await new Promise<void>((r) => transparent.listen(0, '127.0.0.1', () => r()));
    await new Promise<void>((r) => dns.bind(0, '127.0.0.1', () => r()));
    const t0 = process.hrtime.bigint();
    const proxy = new EgressProxy({ allow: ['registry.npmjs.org', '*.github.com', 'pypi.org:443'], deny: ['evil.example'] });
    proxy.serveProxy(listener);
    proxy.serveTransparent(transparent);
    proxy.serveDns(dns);
    await proxy.close();
    times.push(Number(process.hrtime.bigint() - t0) / 1000);
  }
  return median(times);
}

/** Ask the resolver for a name once, for the pool address it hands out. */
async function poolAddress(port: number, name: string): Promise<string> {
  const answer = await dnsQuery(port, name);
  return [...answer.subarray(answer.length - 4)].join('.');
}

function dnsQueryBytes(name: string, id: number): Buffer {
  const labels = name.split('.').map((l) => Buffer.concat([Buffer.from([l.length]), Buffer.from(l)]));
  const header = Buffer.from([id >> 8, id & 0xff, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0]);
  return Buffer.concat([header, ...labels, Buffer.from([0, 0, 1, 0, 1])]);
}

function dnsQuery(port: number, name: string): Promise<Buffer> {
  const sock = dgram.createSocket('udp4');
  return new Promise<Buffer>((resolve, reject) => {
    const timer = setTimeout(() => (sock.close(), reject(new Error('no DNS answer'))), 5000);
    sock.once('message', (m) => {
      clearTimeout(timer);
      sock.close();
      resolve(m);
    });
    sock.send(dnsQueryBytes(name, 1), port, '127.0.0.1');
  });
}

async function dnsRoundTrip(port: number, count: number): Promise<number> {
  const sock = dgram.createSocket('udp4');
  const times: number[] = [];
  try {
    for (let i = 0; i < count; i++) {
      const query = dnsQueryBytes(BENCH_NAME, i & 0xffff);
      const t0 = process.hrtime.bigint();
      await new Promise<void>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error('no DNS answer')), 5000);
        sock.once('message', () => {
          clearTimeout(timer);
          resolve();
        });
        sock.send(query, port, '127.0.0.1');
      });
      times.push(Number(process.hrtime.bigint() - t0) / 1000);
    }
  } finally {
    sock.close();
  }
  return median(times);
}

// Entry point of the server processes (and `node dist/bench/network.js` for the table alone).
if (process.argv[1] === SELF) {
  const [mode, a, b] = process.argv.slice(2);
  const main =
    mode === '--upstream'
      ? serveUpstream()
      : mode === '--cordon'
        ? serveCordon(a === 'js' ? 'js' : 'native', Number(b))
        : mode === '--srt'
          ? serveSrt()
          : runNetworkBench({ runsScale: Number(process.env.CORDON_NET_BENCH_SCALE ?? 1) }).then((table) => {
              process.stdout.write(table + '\n');
              process.exit(0);
            });
  main.catch((e: Error) => {
    process.stderr.write(`${e.message}\n`);
    process.exit(1);
  });
}
