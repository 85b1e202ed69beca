// The reduced tier (no user namespaces), forced on this machine with CORDON_FORCE_REDUCED=1:
// refused unless the policy allows it, said loudly when used, and Landlock + seccomp + the
// launcher's process tracking still stop the escapes they can.
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, test } from 'node:test';
import { bareSh, cordonSh, identities, identityNote, killMatching, makeScene, marker, processesMatching, sleep, startVictim, type Scene } from '../helpers/env.js';

const FORCE = { CORDON_FORCE_REDUCED: '1' };
const reducedSh = (s: Scene, script: string) => cordonSh(s, script, ['--allow-reduced'], { env: FORCE });

for (const id of identities()) {
  describe(`reduced tier as ${id.name}${identityNote}`, () => {
    let s: Scene;
    beforeEach(() => {
      s = makeScene(id);
    });
    afterEach(() => s.cleanup());

    test('refused without --allow-reduced: exit 2, the fix, nothing runs', async () => {
      const r = await cordonSh(s, 'touch ran', [], { env: FORCE });
      assert.equal(r.code, 2);
      assert.match(r.stderr, /^cordon: .*: the full sandbox needs it .* or pass --allow-reduced/);
      assert.ok(!existsSync(join(s.workspace, 'ran')));
    });

    test('with --allow-reduced it says so and lists the layers; the workspace is writable', async () => {
      const r = await reducedSh(s, 'echo ok > inside.txt && cat inside.txt');
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stderr, /running in the REDUCED tier/);
      assert.match(r.stderr, /\[off\] mount view: not enforced/);
      assert.match(r.stderr, /\[on\]  landlock/);
      assert.equal(r.stdout, 'ok\n');
    });

    test('writes outside the workspace are stopped by Landlock (control: they succeed bare)', async () => {
      const script = `echo x > ${s.outside}/pwned-TOKEN; echo x > "$HOME/pwned-TOKEN"`;
      await bareSh(s, script.replaceAll('TOKEN', 'bare'));
      assert.ok(existsSync(join(s.outside, 'pwned-bare')) && existsSync(join(s.home, 'pwned-bare')), 'control');
      const r = await reducedSh(s, script.replaceAll('TOKEN', 'in'));
      assert.ok(!existsSync(join(s.outside, 'pwned-in')) && !existsSync(join(s.home, 'pwned-in')));
      assert.match(r.stderr, /cordon: denied write to .*pwned-in \(outside writable roots/);
    });

    test('host sockets and loopback services are unreachable (control: reachable bare)', async () => {
      const got: string[] = [];
      const tcp = net.createServer((c) => c.on('data', (d) => got.push(String(d))));
      await new Promise<void>((r) => tcp.listen(0, '127.0.0.1', r));
      const sockPath = join(s.base, 'svc.sock');
      const unix = net.createServer((c) => c.on('data', (d) => got.push(String(d))));
      await new Promise<void>((r) => unix.listen(sockPath, r));
      spawnSync('chmod', ['777', sockPath]);
      const port = (tcp.address() as net.AddressInfo).port;
      const script = (t: string) =>
        `python3 -c "import socket; s=socket.create_connection(('127.0.0.1',${port}),2); s.sendall(b'tcp-${t}')" ; ` +
        `python3 -c "import socket; s=socket.socket(socket.AF_UNIX); s.connect('${sockPath}'); s.sendall(b'unix-${t}')"; sleep 0.2`;
      try {
        await bareSh(s, script('bare'));
        assert.ok(got.join().includes('tcp-bare') && got.join().includes('unix-bare'), 'control');
        await reducedSh(s, script('in'));
        assert.ok(!got.join().includes('-in'), got.join());
      } finally {
        tcp.close();
        unix.close();
      }
    });

    test('host processes cannot be signalled (Landlock scope) and daemons die with the command', async () => {
      const victim = await startVictim(s);
      const pid = victim.pid;
      const m = marker();
      try {
        const r = await reducedSh(s, `kill -9 ${pid} || echo kill-refused; setsid -f sh -c "sleep 300; : ${m}" </dev/null >/dev/null 2>&1; sleep 0.2`);
        assert.match(r.stdout, /kill-refused/);
        assert.ok(existsSync(`/proc/${pid}`), 'the host process survived');
        await sleep(200);
        assert.deepEqual(processesMatching(m).filter((p) => p.args.startsWith('sh -c') || p.args.startsWith('sleep')), [], 'the daemon was killed with the command');
      } finally {
        victim.stop();
        killMatching(m);
      }
    });

    test('the private temp dir is used and removed afterwards', async () => {
      const before = new Set(readdirSync(tmpdir()).filter((n) => n.startsWith('cordon-')));
      const r = await reducedSh(s, 'echo "$TMPDIR"; touch "$TMPDIR/x" && echo tmp-ok');
      assert.match(r.stdout, /tmp-ok/);
      const dir = r.stdout.split('\n')[0]!;
      assert.ok(!existsSync(dir), `${dir} removed`);
      const after = readdirSync(tmpdir()).filter((n) => n.startsWith('cordon-') && !before.has(n));
      assert.deepEqual(after, []);
    });
  });
}
