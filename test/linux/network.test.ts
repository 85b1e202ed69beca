// The allow-list network through the whole stack: the sandbox's only way out is cordon's proxy,
// reached through listeners the launcher opens inside the empty network namespace. Test servers
// run on the host's loopback; the proxy resolves the test names from a table (allowed.test, …),
// and loopback upstreams are allowed by address explicitly, as a real policy would have to.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import tls from 'node:tls';
import { after, afterEach, before, beforeEach, describe, test } from 'node:test';
import type { RunResult } from '../../src/sandbox.js';
import { bareSh, CLI, identities, identityNote, makeScene, ROOT, runAs, type Scene } from '../helpers/env.js';

const LIB_RUN = join(ROOT, 'dist', 'test', 'helpers', 'lib-run.js');
const HOSTS = {
  'allowed.test': ['127.0.0.1'],
  'denied.test': ['127.0.0.1'],
  'rebind.test': ['127.0.0.1'],
  'metadata.test': ['169.254.169.254'],
  'registry.test': ['127.0.0.1'],
};

let httpServer: http.Server;
let tlsServer: tls.Server;
let httpPort = 0;
let tlsPort = 0;
const hits: string[] = [];

before(async () => {
  const dir = mkdtempSync(join(tmpdir(), 'cordon-tls-'));
  const r = spawnSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '1', '-subj', '/CN=allowed.test', '-keyout', join(dir, 'k.pem'), '-out', join(dir, 'c.pem')], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  const key = readFileSync(join(dir, 'k.pem'));
  const cert = readFileSync(join(dir, 'c.pem'));
  rmSync(dir, { recursive: true, force: true });
  httpServer = http.createServer((req, res) => {
    hits.push(`${req.headers.host}${req.url}`);
    if (req.url === '/pkg') {
      // A one-package registry: metadata whose tarball is served by the same server.
      res.setHeader('content-type', 'application/json');
      res.end(JSON.stringify(packument()));
    } else if (req.url === '/pkg/-/pkg-1.0.0.tgz') {
      res.end(tarball());
    } else res.end('hello from the host\n');
  });
  await new Promise<void>((r) => httpServer.listen(0, '127.0.0.1', r));
  httpPort = (httpServer.address() as AddressInfo).port;
  tlsServer = tls.createServer({ key, cert }, (s) => {
    s.on('data', () => s.end('HTTP/1.1 200 OK\r\ncontent-length: 10\r\nconnection: close\r\n\r\nsecure-ok\n'));
    s.on('error', () => undefined);
  });
  await new Promise<void>((r) => tlsServer.listen(0, '127.0.0.1', r));
  tlsPort = (tlsServer.address() as AddressInfo).port;
});

after(() => {
  httpServer.close();
  tlsServer.close();
});

let tgz: Buffer | null = null;
function tarball(): Buffer {
  if (tgz) return tgz;
  const dir = mkdtempSync(join(tmpdir(), 'cordon-pkg-'));
  spawnSync('mkdir', ['-p', join(dir, 'package')]);
  writeFileSync(join(dir, 'package', 'package.json'), JSON.stringify({ name: 'pkg', version: '1.0.0', main: 'index.js' }));
  writeFileSync(join(dir, 'package', 'index.js'), 'module.exports = 42;\n');
  spawnSync('tar', ['-czf', join(dir, 'pkg.tgz'), '-C', dir, 'package']);
  tgz = readFileSync(join(dir, 'pkg.tgz'));
  rmSync(dir, { recursive: true, force: true });
  return tgz;
}

function packument(): object {
  const sha = spawnSync('sha1sum', { input: tarball(), encoding: 'buffer' }).stdout.toString().split(' ')[0];
  return {
    name: 'pkg',
    'dist-tags': { latest: '1.0.0' },
    versions: { '1.0.0': { name: 'pkg', version: '1.0.0', dist: { tarball: `http://registry.test:${httpPort}/pkg/-/pkg-1.0.0.tgz`, shasum: sha } } },
  };
}

async function inSandbox(s: Scene, network: object, script: string): Promise<RunResult & { error?: string }> {
  const opts = { cwd: s.workspace, policy: { network }, unsafeTestHooks: { hosts: HOSTS }, timeoutMs: 60_000 };
  const r = await runAs(s, [process.execPath, LIB_RUN, JSON.stringify(opts), 'sh', '-c', script], { timeoutMs: 90_000 });
  const parsed = JSON.parse(r.stdout) as RunResult & { error?: string };
  assert.equal(parsed.error, undefined, parsed.error);
  return parsed;
}

const allowLoopback = () => ({ mode: 'allow-list', allow: ['allowed.test', 'registry.test', `127.0.0.1:${httpPort}`, `127.0.0.1:${tlsPort}`], deny: ['denied.test'] });

for (const id of identities()) {
  describe(`allow-list network as ${id.name}${identityNote}`, () => {
    let s: Scene;
    beforeEach(() => {
      s = makeScene(id);
    });
    afterEach(() => s.cleanup());

    test('allowed host works through HTTP, HTTPS CONNECT and SOCKS5; denied host refused on each with the rule named', async () => {
      const script = [
        `curl -s http://allowed.test:${httpPort}/a`,
        `curl -sk https://allowed.test:${tlsPort}/`,
        `curl -s --proxy socks5h://127.0.0.1:3128 http://allowed.test:${httpPort}/b`,
        `echo "denied-http:$(curl -s -o /dev/null -w '%{http_code}' http://denied.test:${httpPort}/)"`,
        `echo "denied-connect:$(curl -sk -o /dev/null -w '%{http_code}' https://denied.test:${tlsPort}/ 2>&1; echo " rc=$?")"`,
        `echo "denied-socks:$(curl -s --proxy socks5h://127.0.0.1:3128 -o /dev/null http://denied.test:${httpPort}/; echo rc=$?)"`,
        `curl -s http://denied.test:${httpPort}/ | head -c 300; echo`,
      ].join('; ');
      const r = await inSandbox(s, allowLoopback(), script);
      assert.match(r.stdout, /^hello from the host\nsecure-ok\nhello from the host\n/);
      assert.match(r.stdout, /denied-http:403/);
      assert.match(r.stdout, /denied-connect:.*rc=56/);
      assert.match(r.stdout, /denied-socks:rc=97/);
      assert.match(r.stdout, /denied\.test.*(deny|allow) list/, 'the 403 body names the rule');
      assert.ok(r.violations.some((v) => v.kind === 'network' && v.host === 'denied.test'), JSON.stringify(r.violations));
    });

    test('from the CLI: --allow-domain lets curl reach the allowed name; a denied one fails with a clear message', async () => {
      const hostsFile = join(s.base, 'hosts');
      writeFileSync(hostsFile, '127.0.0.1 example.test other.test\n');
      const env = { CORDON_PROXY_HOSTS: hostsFile };
      const flags = ['run', '--allow-domain', 'example.test', '--allow-domain', `127.0.0.1:${tlsPort}`, '--'];
      const ok = await runAs(s, [process.execPath, CLI, ...flags, 'curl', '-sk', `https://example.test:${tlsPort}/`], { env });
      assert.equal(ok.code, 0, ok.stderr);
      assert.equal(ok.stdout, 'secure-ok\n');
      const denied = await runAs(s, [process.execPath, CLI, ...flags, 'curl', '-sk', `https://other.test:${tlsPort}/`], { env });
      assert.notEqual(denied.code, 0);
      assert.match(denied.stderr, /cordon: denied network access to other\.test:\d+ \(other\.test:\d+ is not in the network allow list; add --allow-domain other\.test/);
    });

    test('names that resolve to loopback or cloud metadata are refused unless that address is allowed', async () => {
      const r = await inSandbox(
        s,
        { mode: 'allow-list', allow: ['rebind.test', 'metadata.test'] },
        `echo "rebind:$(curl -s -o /dev/null -w '%{http_code}' http://rebind.test:${httpPort}/)"; echo "metadata:$(curl -s -m 5 -o /dev/null -w '%{http_code}' http://metadata.test/latest/meta-data/)"`,
      );
      assert.match(r.stdout, /rebind:403/);
      assert.match(r.stdout, /metadata:403/);
      assert.ok(!hits.some((h) => h.startsWith('rebind.test')), 'nothing reached the loopback server');
    });

    test('a direct TCP connection that bypasses the proxy, and UDP/DNS to outside, fail (control: they work without cordon)', async () => {
      const probe =
        `python3 -c "import socket; s=socket.create_connection(('127.0.0.1',${httpPort}),2); s.sendall(b'GET /direct HTTP/1.0\\r\\n\\r\\n'); print('direct:', s.recv(100)[:12])" 2>&1 | tail -1; ` +
        `python3 -c "import socket; s=socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.sendto(b'x', ('192.0.2.1', 53)); print('udp: sent')" 2>&1 | tail -1`;
      const bare = await bareSh(s, probe);
      assert.match(bare.stdout, /direct: b'HTTP\/1.1 200'/, 'control: the direct connection works without cordon');
      assert.match(bare.stdout, /udp: sent/, 'control: UDP can be sent without cordon');
      const r = await inSandbox(s, allowLoopback(), probe);
      assert.ok(!/direct: b'HTTP/.test(r.stdout), r.stdout);
      assert.ok(!/udp: sent/.test(r.stdout), r.stdout);
    });

    test('the transparent path: a tool that ignores proxy settings reaches an allowed name; a denied name fails fast', async () => {
      const network = { mode: 'allow-list', allow: [`allowed.test:${httpPort}`, `127.0.0.1:${httpPort}`], deny: ['denied.test'], transparent: true };
      const script =
        `curl -s --noproxy '*' http://allowed.test:${httpPort}/transparent; ` +
        `start=$(date +%s%N); curl -s --noproxy '*' -m 10 http://denied.test:${httpPort}/ ; echo "denied rc=$? ms=$(( ($(date +%s%N) - start) / 1000000 ))"`;
      const r = await inSandbox(s, network, script);
      assert.match(r.stdout, /^hello from the host\n/, r.stderr);
      const ms = Number(/ms=(\d+)/.exec(r.stdout)?.[1]);
      assert.match(r.stdout, /denied rc=6 /, 'could not resolve the denied name');
      assert.ok(ms < 5000, `failed fast (${ms} ms)`);
    });

    test('npm install of a package from a local registry stand-in works when it is allowed', async () => {
      const r = await inSandbox(
        s,
        { mode: 'allow-list', allow: ['registry.test', `127.0.0.1:${httpPort}`] },
        `npm init -y >/dev/null && npm install --no-audit --no-fund --cache ./.npm-cache --registry http://registry.test:${httpPort}/ pkg >/dev/null 2>npm.err; echo "rc=$?"; node -e "console.log(require('pkg'))"; tail -3 npm.err`,
      );
      assert.match(r.stdout, /^rc=0\n42\n/, r.stdout + r.stderr);
    });
  });
}

test('every run with the proxy bridge reports its exit (handles and messages never share a read)', async () => {
  // Node 20 could drop the launcher's messages that followed a handed-over listener in the same
  // read; the launcher now waits for each handle's acknowledgement. Hundreds of runs show it.
  const { createSandbox } = await import('../../src/sandbox.js');
  const s = makeScene(identities()[0]!);
  try {
    const sb = await createSandbox({ userConfig: null, cwd: s.workspace, policy: { network: { allow: ['example.com'] } } });
    for (let i = 0; i < 300; i++) {
      const r = await sb.spawn(['true'], { stdio: ['ignore', 'ignore', 'ignore'] }).result;
      assert.equal(r.exitCode, 0, `run ${i}`);
    }
    await sb.close();
  } finally {
    s.cleanup();
  }
});
