// End to end in a network namespace the test creates: nothing inside has a route out; the only
// ways out are the listeners the namespace hands to the proxy over IPC (as cordon's launcher
// does). Probes are ordinary programs (curl, getent) using the system resolver and no proxy
// settings, unless a probe sets them.

import assert from 'node:assert/strict';
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import type * as dgram from 'node:dgram';
import type * as net from 'node:net';
import { dirname, join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';

import { EgressProxy } from '../../src/network/proxy.js';
import { type RunResult, type Upstream, curl, startHttpUpstream, testResolver } from './helpers.js';

const here = dirname(fileURLToPath(import.meta.url));

function namespacesAvailable(): string | false {
  const r = spawnSync('unshare', ['--net', '--mount', '--map-root-user', 'true'], { encoding: 'utf8', timeout: 10_000 });
  return r.status === 0 ? false : `cannot create namespaces here: ${r.stderr.trim() || r.error?.message}`;
}

const skip = namespacesAvailable();

describe('inside a fresh network namespace', { skip }, () => {
  let web: Upstream;
  let proxy: EgressProxy;
  let child: ChildProcess;
  let nextId = 1;
  const waiting = new Map<number, (r: RunResult) => void>();

  before(async () => {
    // The upstream lives on 127.0.0.3 (allowed explicitly, so allowed.test may resolve there);
    // 127.0.0.1 stays refused.
    web = await startHttpUpstream('127.0.0.3');
    proxy = new EgressProxy({
      allow: ['allowed.test', '127.0.0.3'],
      deny: [],
      resolve: async (host) => (host === 'allowed.test' ? ['127.0.0.3'] : testResolver(host)),
    });
    child = spawn('unshare', ['--net', '--mount', '--map-root-user', process.execPath, join(here, 'fixtures', 'netns-child.js'), String(web.port)], {
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    });
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('namespace child did not become ready')), 20_000);
      child.on('message', (m: { kind: string; id?: number; message?: string } & RunResult, handle?: net.Server | dgram.Socket) => {
        if (m.kind === 'proxy') proxy.serveProxy(handle as net.Server);
        else if (m.kind === 'transparent') proxy.serveTransparent(handle as net.Server);
        else if (m.kind === 'dns') proxy.serveDns(handle as dgram.Socket);
        else if (m.kind === 'ready') {
          clearTimeout(timer);
          resolve();
        } else if (m.kind === 'error') reject(new Error(`namespace child: ${m.message}`));
        else if (m.kind === 'result') {
          waiting.get(m.id!)?.({ code: m.code, stdout: m.stdout, stderr: m.stderr });
          waiting.delete(m.id!);
        }
      });
      child.once('exit', (code) => reject(new Error(`namespace child exited with ${code}`)));
    });
  });

  after(async () => {
    if (child.exitCode === null) {
      const exited = new Promise<void>((r) => child.once('exit', () => r()));
      child.send({ kind: 'exit' });
      const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
      await exited;
      clearTimeout(timer);
    }
    await proxy.close();
    await web.close();
  });

  /** Run a program inside the namespace. */
  function inside(file: string, args: string[], env?: Record<string, string>): Promise<RunResult> {
    const id = nextId++;
    return new Promise((resolve) => {
      waiting.set(id, resolve);
      child.send({ id, file, args, env });
    });
  }

  it('reaches an allowed name with plain curl: in-sandbox DNS answers from the pool, the relay forwards', async () => {
    const r = await inside('curl', ['-sS', '--max-time', '10', `http://allowed.test:${web.port}/hello`]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, `hello from upstream, host=allowed.test:${web.port}\n`);
    const lookup = await inside('getent', ['ahostsv4', 'allowed.test']);
    assert.match(lookup.stdout, /^127\.80\.\d+\.\d+\s/);
  });

  it('reaches an allowed name from Node without any proxy settings (http.get ignores them)', async () => {
    const script = `require('http').get('http://allowed.test:${web.port}/hello', (res) => res.pipe(process.stdout)).on('error', (e) => { console.error(e.code); process.exit(3); })`;
    const r = await inside(process.execPath, ['-e', script]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, `hello from upstream, host=allowed.test:${web.port}\n`);
  });

  it('fails fast and clearly for a denied name (resolver says it does not exist)', async () => {
    const before = web.seen.length;
    const r = await inside('curl', ['-sS', '--max-time', '10', `http://denied.test:${web.port}/hello`]);
    assert.equal(r.code, 6, r.stderr);
    assert.match(r.stderr, /Could not resolve host: denied\.test/);
    assert.equal(web.seen.length, before);
    assert.ok(proxy.denials.some((d) => d.protocol === 'dns' && d.host === 'denied.test'));
  });

  it('serves proxy-aware tools through the bridged proxy listener, with the same rules', async () => {
    const env = { http_proxy: 'http://127.0.0.1:3128', HTTPS_PROXY: 'http://127.0.0.1:3128' };
    const ok = await inside('curl', ['-sS', '--max-time', '10', `http://allowed.test:${web.port}/hello`], env);
    assert.equal(ok.code, 0, ok.stderr);
    const denied = await inside('curl', ['-sS', '--max-time', '10', `http://denied.test:${web.port}/hello`], env);
    assert.match(denied.stdout, /^cordon: denied\.test:\d+ is not in the network allow list; add --allow-domain denied\.test/);
  });

  it('refuses direct connections that bypass names (IP literals inside the namespace)', async () => {
    // 127.0.0.1:port inside the namespace hits the transparent listener, which refuses addresses
    // it did not hand out; the same request outside the namespace reaches a server there.
    const seen = web.seen.length;
    const bypass = await inside('curl', ['-sS', '--max-time', '10', '--noproxy', '*', `http://127.0.0.1:${web.port}/hello`]);
    assert.ok(bypass.code === 7 || bypass.code === 52 || bypass.code === 56, `curl exit ${bypass.code}: ${bypass.stderr}`);
    assert.equal(web.seen.length, seen);
    assert.ok(proxy.denials.some((d) => d.protocol === 'transparent' && d.host === '127.0.0.1' && d.port === web.port));
    const local = await startHttpUpstream('127.0.0.1', web.port);
    try {
      const outside = await curl(['--noproxy', '*', `http://127.0.0.1:${web.port}/hello`]);
      assert.equal(outside.code, 0, outside.stderr);
      assert.equal(local.seen.length, 1, 'the control probe reached the host-side server');
    } finally {
      await local.close();
    }
    // No route to anything but loopback.
    const away = await inside('curl', ['-sS', '--max-time', '5', '--noproxy', '*', 'http://192.0.2.1:80/']);
    assert.equal(away.code, 7, away.stderr);
    assert.match(away.stderr, /unreachable|Couldn't connect/i);
  });

  it('relays a loopback address the rules name explicitly to the same address on the host', async () => {
    const r = await inside('curl', ['-sS', '--max-time', '10', '--noproxy', '*', `http://127.0.0.3:${web.port}/hello`]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, `hello from upstream, host=127.0.0.3:${web.port}\n`);
  });
});
