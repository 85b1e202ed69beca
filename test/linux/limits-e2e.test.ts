// Resource limits through the whole stack (cordon run → cgroup or rlimits → launcher): a fork
// bomb is contained, a memory hog is stopped with a clear reason, normal tools are not bothered.
// Each probe also runs without cordon to show it would have gone past the limit.
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, test } from 'node:test';
import { bareSh, cordonSh, identities, identityNote, makeScene, ROOT, type Scene } from '../helpers/env.js';

/** Forks (bounded: 200 children, 10 s) until fork fails; prints how many children it had at once. */
const BOMB = `python3 -c "
import os, time, sys
kids = []
deadline = time.time() + 10
while len(kids) < 200 and time.time() < deadline:
    try:
        pid = os.fork()
    except OSError:
        break
    if pid == 0:
        time.sleep(3)
        os._exit(0)
    kids.append(pid)
print(len(kids))
for k in kids: os.kill(k, 9)
"`;

/** Asks for 1 GiB and touches it; prints "allocated" if it got it. */
const HOG = `python3 -c "
b = bytearray(1024 * 1024 * 1024)
for i in range(0, len(b), 4096): b[i] = 1
print('allocated')
"`;

for (const id of identities()) {
  describe(`resource limits as ${id.name}${identityNote}`, () => {
    let s: Scene;
    beforeEach(() => {
      s = makeScene(id);
    });
    afterEach(() => s.cleanup());

    test('a fork bomb is contained by --pids (control: it reaches 200 without cordon)', async () => {
      const bare = await bareSh(s, BOMB);
      assert.equal(bare.stdout.trim(), '200', `control: ${bare.stderr}`);
      const r = await cordonSh(s, BOMB, ['--pids', '64'], { timeoutMs: 60_000 });
      const children = Number(r.stdout.trim());
      assert.ok(children > 0 && children < 64, `stopped below the limit, had ${children} (${r.stderr})`);
      // The host is unaffected: it can still start processes.
      assert.equal((await bareSh(s, 'echo alive')).stdout, 'alive\n');
    });

    test('a memory hog is stopped by --memory with a clear reason (control: it gets 1 GiB without cordon)', async () => {
      const bare = await bareSh(s, HOG);
      assert.match(bare.stdout, /allocated/, `control: ${bare.stderr}`);
      const r = await cordonSh(s, HOG, ['--memory', '256M'], { timeoutMs: 60_000 });
      assert.ok(!r.stdout.includes('allocated'));
      assert.notEqual(r.code, 0);
      // A cgroup names the limit that fired; a per-process rlimit (unprivileged, no cgroup) cannot
      // know, and says the limit was there.
      assert.match(r.stderr, /cordon: memory limit 256 MiB reached|cordon: the command failed with each process limited to 256 MiB of memory/);
    });

    test('the default limits do not bother node, npm or a TypeScript build', async () => {
      const tsc = join(ROOT, 'node_modules', '.bin', 'tsc');
      const r = await cordonSh(s, `node -e "console.log(1+1)" && npm --version >/dev/null && ${tsc} -v`, [], { timeoutMs: 120_000 });
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stdout, /^2\nVersion \d+\./);
      assert.ok(!/limit .* reached/.test(r.stderr), r.stderr);
    });
  });
}
