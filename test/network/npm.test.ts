// `npm install` from a local registry stand-in, through the proxy, as a sandboxed agent would
// run it: the registry is only reachable by name, through the proxy, when the rules allow it.

import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';

import { cleanEnv, run, startProxy } from './helpers.js';

const PACKAGE = 'cordon-fixture';

interface Registry {
  port: number;
  seen: string[];
  close(): Promise<void>;
}

/** A tarball of a one-file package, built with tar for this run. */
function buildTarball(dir: string): Buffer {
  const pkg = join(dir, 'src', 'package');
  mkdirSync(pkg, { recursive: true });
  writeFileSync(join(pkg, 'package.json'), JSON.stringify({ name: PACKAGE, version: '1.0.0', main: 'index.js' }));
  writeFileSync(join(pkg, 'index.js'), "module.exports = 'installed through cordon';\n");
  const tgz = join(dir, 'fixture.tgz');
  const r = spawnSync('tar', ['-czf', tgz, '-C', join(dir, 'src'), 'package'], { encoding: 'utf8', timeout: 20_000 });
  if (r.status !== 0) throw new Error(`tar failed: ${r.stderr}`);
  return readFileSync(tgz);
}

/** Just enough of the npm registry protocol: a packument and its tarball. */
async function startRegistry(tarball: Buffer): Promise<Registry> {
  const seen: string[] = [];
  let port = 0;
  const server = http.createServer((req, res) => {
    seen.push(req.url ?? '');
    const base = `http://registry.test:${port}`;
    if (req.url === `/${PACKAGE}`) {
      res.setHeader('content-type', 'application/json');
      res.end(
        JSON.stringify({
          name: PACKAGE,
          'dist-tags': { latest: '1.0.0' },
          versions: {
            '1.0.0': {
              name: PACKAGE,
              version: '1.0.0',
              main: 'index.js',
              dist: {
                tarball: `${base}/${PACKAGE}/-/${PACKAGE}-1.0.0.tgz`,
                shasum: createHash('sha1').update(tarball).digest('hex'),
                integrity: `sha512-${createHash('sha512').update(tarball).digest('base64')}`,
              },
            },
          },
        }),
      );
    } else if (req.url === `/${PACKAGE}/-/${PACKAGE}-1.0.0.tgz`) {
      res.setHeader('content-type', 'application/octet-stream');
      res.end(tarball);
    } else {
      res.statusCode = 404;
      res.end('{}');
    }
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  port = (server.address() as AddressInfo).port;
  return {
    port,
    seen,
    close: () =>
      new Promise<void>((r) => {
        server.close(() => r());
        server.closeAllConnections();
      }),
  };
}

describe('npm install through the proxy', () => {
  let dir: string;
  let registry: Registry;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'cordon-npm-'));
    registry = await startRegistry(buildTarball(dir));
  });
  after(async () => {
    await registry.close();
    rmSync(dir, { recursive: true, force: true });
  });

  /** npm configured the way the sandbox's environment configures it: only the proxy knows names. */
  async function npmInstall(proxyPort: number, project: string) {
    mkdirSync(project, { recursive: true });
    writeFileSync(join(project, 'package.json'), JSON.stringify({ name: 'consumer', version: '1.0.0', private: true }));
    const proxyUrl = `http://127.0.0.1:${proxyPort}`;
    const env = cleanEnv({
      HOME: project,
      HTTP_PROXY: proxyUrl,
      HTTPS_PROXY: proxyUrl,
      npm_config_proxy: proxyUrl,
      npm_config_https_proxy: proxyUrl,
      npm_config_cache: join(project, '.npm-cache'),
      npm_config_userconfig: join(project, '.npmrc'),
      npm_config_update_notifier: 'false',
    });
    return run(
      'npm',
      ['install', '--registry', `http://registry.test:${registry.port}/`, '--no-audit', '--no-fund', '--fetch-retries=0', '--fetch-timeout=10000', PACKAGE],
      { env, cwd: project, timeoutMs: 90_000 },
    );
  }

  it('installs a package when the registry name (and its loopback address) is allowed', async () => {
    const h = await startProxy({ allow: ['registry.test', `127.0.0.1:${registry.port}`] });
    try {
      const project = join(dir, 'allowed');
      const r = await npmInstall(h.port, project);
      assert.equal(r.code, 0, r.stderr);
      const installed = join(project, 'node_modules', PACKAGE, 'index.js');
      assert.ok(existsSync(installed), r.stdout + r.stderr);
      assert.ok(registry.seen.includes(`/${PACKAGE}/-/${PACKAGE}-1.0.0.tgz`));
      assert.equal(h.proxy.denials.length, 0);
    } finally {
      await h.close();
    }
  });

  it('fails, without the registry seeing a request, when the registry is not allowed', async () => {
    const before = registry.seen.length;
    const h = await startProxy({ allow: ['registry.npmjs.org'] });
    try {
      const project = join(dir, 'denied');
      const r = await npmInstall(h.port, project);
      assert.notEqual(r.code, 0);
      assert.match(r.stderr, /403/);
      assert.ok(!existsSync(join(project, 'node_modules', PACKAGE)));
      assert.equal(registry.seen.length, before);
      assert.equal(h.proxy.denials[0]?.host, 'registry.test');
    } finally {
      await h.close();
    }
  });
});
