// The seccomp layer through the whole stack (cordon run → bwrap → launcher → user notification):
// every denied family is refused and reported, nested namespaces and TIOCSTI fail, and normal
// tools keep working. The probes' controls (each reaches the kernel without the filter) are in
// test/linux/seccomp/kernel.test.ts; here the sandboxed answers must match the filter's.
import assert from 'node:assert/strict';
import { afterEach, beforeEach, describe, test } from 'node:test';
import { SYSCALLS, hostArch } from '../../src/linux/seccomp/syscalls.js';
import { join } from 'node:path';
import type { RunResult } from '../../src/sandbox.js';
import { bareSh, cordonSh, identities, identityNote, makeScene, runAs, ROOT, type Scene } from '../helpers/env.js';

const LIB_RUN = join(ROOT, 'dist', 'test', 'helpers', 'lib-run.js');
import { PROBE_SCRIPT } from './seccomp/probes.js';

const EPERM = 1;
const ENOSYS = 38;
const arch = hostArch()!;

function expected(name: string): number | string {
  if (name.startsWith('ok:') || name === 'socket:AF_INET' || name === 'socket:AF_INET6') return 0;
  if (name === 'clone3') return ENOSYS;
  if (name.startsWith('cmd:')) return 'exit:1';
  if (name.startsWith('x32:') || name.startsWith('i386:')) return 'signal:31';
  return EPERM;
}

for (const id of identities()) {
  describe(`system calls through cordon as ${id.name}${identityNote}`, () => {
    let s: Scene;
    beforeEach(() => {
      s = makeScene(id);
    });
    afterEach(() => s.cleanup());

    test('every denied family is refused by the supervisor and reported', async () => {
      const config = JSON.stringify({ nr: SYSCALLS[arch], arch, only: null });
      const ran = await runAs(s, [process.execPath, LIB_RUN, JSON.stringify({ cwd: s.workspace }), 'python3', '-c', PROBE_SCRIPT, config], { timeoutMs: 120_000 });
      const r = JSON.parse(ran.stdout) as RunResult;
      assert.equal(r.exitCode, 0, r.stderr);
      const results = JSON.parse(r.stdout) as Record<string, number | string>;
      assert.ok(Object.keys(results).length > 90);
      for (const [name, got] of Object.entries(results)) assert.equal(got, expected(name), `${name} inside cordon`);
      const reported = new Set(r.violations.map((v) => (v.kind === 'syscall' ? v.syscall : '')));
      for (const call of ['unshare', 'setns', 'mount', 'pivot_root', 'ptrace', 'process_vm_readv', 'keyctl', 'add_key', 'bpf', 'io_uring_setup', 'perf_event_open', 'userfaultfd', 'ioctl', 'socket', 'personality', 'kexec_load', 'init_module', 'reboot', 'settimeofday', 'open_by_handle_at'])
        assert.ok(reported.has(call), `${call} is reported (got ${[...reported].join(', ')})`);
    });

    test('nested unshare -U / -m and TIOCSTI fail inside, work outside', async () => {
      const script = 'unshare -U true && echo USERNS-OK; unshare -m true && echo MOUNTNS-OK; ' +
        `python3 -c "import fcntl,os,termios,pty\nm,sl=os.openpty();n=os.ttyname(sl);os.setsid();fd=os.open(n,os.O_RDWR)\ntry:\n  fcntl.ioctl(fd, termios.TIOCSTI, b'x'); print('TIOCSTI-OK')\nexcept OSError as e: print('TIOCSTI', e.errno)"`;
      const bare = await bareSh(s, script);
      assert.match(bare.stdout, /USERNS-OK/, 'control: user namespaces work here without cordon');
      assert.match(bare.stdout, /TIOCSTI-OK/, 'control: TIOCSTI works here without cordon');
      if (id.uid === 0) assert.match(bare.stdout, /MOUNTNS-OK/);
      const r = await cordonSh(s, script);
      assert.ok(!/USERNS-OK|MOUNTNS-OK|TIOCSTI-OK/.test(r.stdout), r.stdout);
      assert.match(r.stdout, /TIOCSTI 1/);
    });

    test('normal tools work: git, node, python3, npm scripts, make, a C compile', async () => {
      const script = [
        'set -eu',
        'printf "{\\"name\\":\\"t\\",\\"version\\":\\"1.0.0\\",\\"scripts\\":{\\"hello\\":\\"node -e \\\\\\"console.log(41+1)\\\\\\"\\"}}" > package.json',
        'npm run -s hello',
        'printf "all:\\n\\tcc -o hello hello.c\\n" > Makefile',
        'printf "#include <stdio.h>\\nint main(void){puts(\\"compiled\\");return 0;}\\n" > hello.c',
        'make -s && ./hello',
        'python3 -c "import subprocess,sys; print(subprocess.check_output([sys.executable, \\"-c\\", \\"print(7)\\"]).decode().strip())"',
        'node -e "require(\'node:http\').createServer((q,r)=>r.end(\'srv\')).listen(0,\'127.0.0.1\',function(){require(\'node:http\').get(\'http://127.0.0.1:\'+this.address().port,res=>{res.on(\'data\',d=>{console.log(String(d));process.exit(0)})})})"',
        'git add -A && git commit -qm tools && git log --oneline | wc -l',
      ].join('\n');
      const r = await cordonSh(s, script, [], { timeoutMs: 120_000 });
      assert.equal(r.code, 0, r.stderr);
      assert.deepEqual(r.stdout.trim().split('\n'), ['42', 'compiled', '7', 'srv', '1']);
      // npm tries to create its cache in the (read-only) home; nothing else is denied.
      const denials = r.stderr.split('\n').filter((l) => l.startsWith('cordon: denied') && !l.includes('/.npm'));
      assert.deepEqual(denials, []);
    });
  });
}
