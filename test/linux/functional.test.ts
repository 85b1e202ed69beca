// What a developer's tools must still be able to do inside the default sandbox.
import assert from 'node:assert/strict';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, test } from 'node:test';
import { cordonSh, identities, identityNote, makeScene, type Scene } from '../helpers/env.js';

for (const id of identities()) {
  describe(`normal work inside the sandbox as ${id.name}${identityNote}`, () => {
    let s: Scene;
    beforeEach(() => {
      s = makeScene(id);
    });
    afterEach(() => s.cleanup());

    test('write in the workspace; git add, commit, checkout -b, stash', async () => {
      const r = await cordonSh(
        s,
        [
          'set -e',
          'echo one > a.txt',
          'git add a.txt README',
          'git commit -qm first',
          'git checkout -q -b feature',
          'echo two >> a.txt',
          'git stash -q',
          'git stash pop -q',
          'git commit -qam second',
          'git log --oneline | wc -l',
        ].join('\n'),
      );
      assert.equal(r.code, 0, r.stderr);
      assert.equal(r.stdout.trim(), '2');
      assert.equal(readFileSync(join(s.workspace, 'a.txt'), 'utf8'), 'one\ntwo\n');
    });

    test('node and python3 scripts, pipes, background jobs inside one command', async () => {
      writeFileSync(join(s.workspace, 'script.py'), 'import sys\nprint(sum(int(x) for x in sys.stdin.read().split()))\n');
      writeFileSync(join(s.workspace, 'script.mjs'), "import { execSync } from 'node:child_process'; console.log(execSync('echo from-child').toString().trim());\n");
      const r = await cordonSh(s, 'seq 1 10 | python3 script.py; node script.mjs; (sleep 0.2; echo bg-done) & echo fg; wait');
      assert.equal(r.code, 0, r.stderr);
      assert.deepEqual(r.stdout.trim().split('\n'), ['55', 'from-child', 'fg', 'bg-done']);
    });

    test('a private /tmp: writable inside, invisible outside, gone afterwards', async () => {
      const name = `cordon-private-${process.pid}-${Date.now()}`;
      const r = await cordonSh(s, `echo secret > /tmp/${name} && cat /tmp/${name} && echo "TMPDIR=$TMPDIR" && ls -A /tmp | grep -c cordon-test || true`);
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stdout, /^secret\nTMPDIR=\/tmp\n/);
      assert.ok(!existsSync(`/tmp/${name}`), 'the host /tmp is untouched');
    });

    test('secrets in the environment are removed unless kept', async () => {
      const r = await cordonSh(s, 'echo "[$GITHUB_TOKEN][$KEEP_ME_TOKEN][$PLAIN]"', ['--env-keep', 'KEEP_ME_*'], {
        env: { GITHUB_TOKEN: 'ghp_secret', KEEP_ME_TOKEN: 'kept', PLAIN: 'plain' },
      });
      assert.equal(r.stdout.trim(), '[][kept][plain]');
    });

    test('the command sees only its own processes and is not host root', async () => {
      const r = await cordonSh(s, 'ls /proc | grep -c "^[0-9]"; cat /proc/self/status | grep -E "^(CapEff|NoNewPrivs)"; echo x > /proc/sys/kernel/hostname 2>/dev/null && echo WROTE-SYSCTL; true');
      assert.equal(r.code, 0, r.stderr);
      const lines = r.stdout.trim().split('\n');
      assert.ok(Number(lines[0]) <= 6, `only a handful of processes are visible, saw ${lines[0]}`);
      assert.match(r.stdout, /CapEff:\s+0000000000000000/);
      assert.match(r.stdout, /NoNewPrivs:\s+1/);
      assert.ok(!r.stdout.includes('WROTE-SYSCTL'));
    });

    test('read-only mode: nothing is writable but the private /tmp', async () => {
      const r = await cordonSh(s, 'echo x > inside.txt; echo y > /tmp/ok && echo tmp-ok', ['--mode', 'read-only']);
      assert.ok(!existsSync(join(s.workspace, 'inside.txt')));
      assert.match(r.stdout, /tmp-ok/);
      assert.match(r.stderr, /cordon: denied write to .*inside\.txt \(read-only mode/);
    });

    test('an extra writable root given with --write', async () => {
      const r = await cordonSh(s, `echo x > ${s.outside}/allowed.txt`, ['--write', s.outside]);
      assert.equal(r.code, 0, r.stderr);
      assert.ok(existsSync(join(s.outside, 'allowed.txt')));
    });
  });
}
