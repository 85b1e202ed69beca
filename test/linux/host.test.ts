// Facts and clean-up about the host that the Linux backend relies on.
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { copyFileSync, mkdtempSync, realpathSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { sweepOrphanedSandboxes } from '../../src/linux/host.js';
import { processesMatching, sleep } from '../helpers/env.js';

test('orphaned sandboxes (a bwrap child adopted by init, starting a cordon launcher) are killed; others are left alone', async () => {
  // A stand-in with the shape of the real thing: a process named bwrap whose command ends in
  // "-- …/cordon-launcher", adopted by init (setsid -f), and a control that is not adopted.
  const dir = mkdtempSync(join(tmpdir(), 'cordon-sweep-'));
  const fake = join(dir, 'bwrap');
  copyFileSync(realpathSync('/usr/bin/perl'), fake); // any program that sleeps and ignores extra arguments
  const marker = `sweep-${process.pid}-${Date.now()}`;
  const code = `sleep 60; # ${marker}`;
  try {
    spawnSync('setsid', ['-f', fake, '-e', code, '--', '/opt/elsewhere/build/cordon-launcher'], { stdio: 'ignore' });
    const ours = spawn(fake, ['-e', code, '--', '/opt/elsewhere/build/cordon-launcher'], { stdio: 'ignore' }); // still has its parent
    spawnSync('setsid', ['-f', fake, '-e', code, '--', '/usr/bin/true'], { stdio: 'ignore' });
    await sleep(300);
    const before = processesMatching(marker);
    assert.equal(before.length, 3, JSON.stringify(before));
    const killed = sweepOrphanedSandboxes('/work/elsewhere/build/cordon-launcher');
    assert.equal(killed, 1);
    await sleep(200);
    const left = processesMatching(marker).map((p) => p.args);
    assert.equal(left.length, 2, JSON.stringify(left));
    assert.ok(left.some((a) => a.endsWith('/usr/bin/true')), 'a bwrap that does not start a cordon launcher stays');
    assert.ok(left.some((a) => a.endsWith('cordon-launcher')), 'a bwrap whose parent is alive stays');
    ours.kill('SIGKILL');
  } finally {
    spawnSync('pkill', ['-9', '-f', marker]);
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a host socket that vanishes between planning and start does not fail the sandbox', async () => {
  const { createSandbox } = await import('../../src/sandbox.js');
  const { makeScene, identities } = await import('../helpers/env.js');
  const net = await import('node:net');
  const s = makeScene(identities()[0]!);
  const sock = join(s.base, 'fleeting.sock');
  const server = net.createServer();
  await new Promise<void>((r) => server.listen(sock, r));
  try {
    const sb = await createSandbox({ userConfig: null, cwd: s.workspace, env: s.env });
    assert.ok(sb.bwrapArgs.includes(sock), 'the plan masks the socket');
    await new Promise<void>((r) => server.close(() => r())); // removes the socket file
    const r = await sb.run(['true']);
    assert.equal(r.exitCode, 0);
    await sb.close();
  } finally {
    server.close();
    s.cleanup();
  }
});
