// Defence in depth: each filesystem layer stops a write on its own.
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, test } from 'node:test';
import type { RunResult } from '../../src/sandbox.js';
import { identities, identityNote, makeScene, ROOT, runAs, type Scene } from '../helpers/env.js';

const LIB_RUN = join(ROOT, 'dist', 'test', 'helpers', 'lib-run.js');

async function libRun(s: Scene, opts: object, argv: string[]): Promise<RunResult & { error?: string }> {
  const r = await runAs(s, [process.execPath, LIB_RUN, JSON.stringify({ cwd: s.workspace, ...opts }), ...argv]);
  return JSON.parse(r.stdout) as RunResult & { error?: string };
}

for (const id of identities()) {
  describe(`defence in depth as ${id.name}${identityNote}`, () => {
    let s: Scene;
    beforeEach(() => {
      s = makeScene(id);
    });
    afterEach(() => s.cleanup());

    const write = (name: string) => ['sh', '-c', `echo x > ${join(s.outside, name)}`];

    test('control: a writable bind too many and no Landlock lets the write through', async () => {
      const r = await libRun(s, { unsafeTestHooks: { landlock: false, unsafeExtraWritableBinds: [s.outside] } }, write('control'));
      assert.equal(r.exitCode, 0, JSON.stringify(r));
      assert.ok(existsSync(join(s.outside, 'control')), 'the broken plan really is broken');
    });

    test('a writable bind too many: Landlock alone still stops the write', async () => {
      const r = await libRun(s, { unsafeTestHooks: { unsafeExtraWritableBinds: [s.outside] } }, write('landlock'));
      assert.notEqual(r.exitCode, 0);
      assert.match(r.stderr, /Permission denied/, 'Landlock answers EACCES (a mount would say read-only)');
      assert.ok(!existsSync(join(s.outside, 'landlock')));
    });

    test('Landlock off: the mount view alone stops the write', async () => {
      const r = await libRun(s, { unsafeTestHooks: { landlock: false } }, write('mounts'));
      assert.notEqual(r.exitCode, 0);
      assert.match(r.stderr, /Read-only file system/);
      assert.ok(!existsSync(join(s.outside, 'mounts')));
    });
  });
}
