// Sessions: one sandbox, many commands, an agent shell's memory, background processes.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, test } from 'node:test';
import { identities, identityNote, makeScene, marker, processesMatching, ROOT, runAs, sleep, type Scene } from './helpers/env.js';

const SCENARIO = join(ROOT, 'dist', 'test', 'helpers', 'scenario.js');

async function scenario(s: Scene, name: string, args: Record<string, string> = {}): Promise<Record<string, unknown>> {
  const r = await runAs(s, [process.execPath, SCENARIO, name, JSON.stringify(args)], { timeoutMs: 60_000 });
  assert.equal(r.code, 0, r.stderr);
  return JSON.parse(r.stdout) as Record<string, unknown>;
}

let port = 20000 + (process.pid % 10000);

for (const id of identities()) {
  describe(`sessions as ${id.name}${identityNote}`, () => {
    let s: Scene;
    beforeEach(() => {
      s = makeScene(id);
    });
    afterEach(() => s.cleanup());

    test('the working directory and exported variables carry over, also after exit N', async () => {
      const r = await scenario(s, 'sessionState');
      assert.equal(r.a, 0);
      assert.equal(r.b, `${join(s.workspace, 'sub', 'dir')}\nhello/unset\n`);
      assert.equal(r.c, 3);
      assert.equal(r.cwdAfterExit, join(s.workspace, 'sub'));
      assert.equal(r.d, `${join(s.workspace, 'sub')}\n`);
    });

    test('a background server is reachable from a later command; crashed or killed commands leave the session up; close ends it', async () => {
      const p = String(port++);
      const r = await scenario(s, 'sessionBackground', { port: p });
      assert.equal(r.start, 'started');
      assert.equal(r.reached, '200', String(r.log));
      assert.equal(r.crash, 139);
      assert.equal(r.killed, 137);
      assert.equal(r.after, 'still-alive');
      assert.deepEqual(processesMatching(`http.server ${p}`), [], 'the server is gone after close');
    });

    test('library: runs then close() settles, and the host process ends by itself with nothing left', async () => {
      const r = await scenario(s, 'runsThenClose');
      assert.deepEqual(r.codes, [0, 1, 2, 3, 4]);
      assert.deepEqual(processesMatching(s.workspace).filter((p) => p.args.includes('bwrap') || p.args.includes('cordon-launcher')), [], 'no sandbox of this scene is left');
    });

    test('killing cordon with SIGKILL takes the whole session down', async () => {
      const m = marker();
      const argv = [process.execPath, SCENARIO, 'sessionHang', JSON.stringify({ marker: m })];
      const full = id.user ? ['runuser', '-u', id.user, '--', 'env', '-i', ...Object.entries(s.env).map(([k, v]) => `${k}=${v}`), ...argv] : argv;
      const child = spawn(full[0]!, full.slice(1), { cwd: s.workspace, env: s.env, stdio: ['ignore', 'pipe', 'inherit'] });
      const inSandbox = () => processesMatching(m).filter((p) => p.args.startsWith('sh -c') || p.args.startsWith('sleep'));
      try {
        await new Promise<void>((r, reject) => {
          child.stdout!.once('data', () => r());
          child.once('exit', () => reject(new Error('the scenario ended early')));
        });
        assert.ok(inSandbox().length > 0, 'the background process runs');
        const cordon = processesMatching(m).filter((p) => p.args.startsWith(process.execPath) && p.args.includes(SCENARIO));
        assert.equal(cordon.length, 1, JSON.stringify(cordon));
        process.kill(cordon[0]!.pid, 'SIGKILL');
        for (let i = 0; i < 40 && inSandbox().length; i++) await sleep(50);
        assert.deepEqual(inSandbox(), []);
      } finally {
        child.kill('SIGKILL');
        for (const p of processesMatching(m)) process.kill(p.pid, 'SIGKILL');
      }
    });
  });
}
