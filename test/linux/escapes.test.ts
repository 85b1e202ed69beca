// Escape probes on the real kernel. Each probe first runs WITHOUT cordon and must escape there
// (proving the probe can see an escape), then runs inside `cordon run` and must be contained.
// Every probe runs as root and as an unprivileged user (CORDON_TEST_USER).
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync, chownSync } from 'node:fs';
import net from 'node:net';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, test } from 'node:test';
import { bareSh, cordonSh, identities, identityNote, killMatching, makeScene, marker, pidsMatching, processesMatching, sleep, startVictim, type Scene } from '../helpers/env.js';

interface Probe {
  /** Shell script; TOKEN is replaced by a fresh token per run. */
  script: string;
  /** Did the run with this token escape? */
  escaped: (token: string, out: { stdout: string; stderr: string }) => boolean;
  /** Restore the scene between the control run and the sandboxed run. */
  reset?: () => void;
  /** Skip the control run (it would need privileges this identity lacks), with the reason. */
  noControl?: string;
  flags?: string[];
}

async function checkProbe(s: Scene, p: Probe): Promise<void> {
  if (!p.noControl) {
    const t = marker();
    const bare = await bareSh(s, p.script.replaceAll('TOKEN', t));
    assert.ok(p.escaped(t, bare), `control: without cordon the probe must escape (it did not; the probe is broken)\n${bare.stderr}`);
    p.reset?.();
  }
  const t = marker();
  const r = await cordonSh(s, p.script.replaceAll('TOKEN', t), p.flags);
  assert.ok(!p.escaped(t, r), `escaped the sandbox!\nstdout: ${r.stdout}\nstderr: ${r.stderr}`);
}

for (const id of identities()) {
  describe(`escape probes as ${id.name}${identityNote}`, () => {
    let s: Scene;
    beforeEach(() => {
      s = makeScene(id);
    });
    afterEach(() => s.cleanup());

    test('write to $HOME', () =>
      checkProbe(s, { script: 'echo x > "$HOME/pwned-TOKEN"', escaped: (t) => existsSync(join(s.home, `pwned-${t}`)) }));

    test('write to a sibling workspace', () =>
      checkProbe(s, { script: `echo x > ${s.outside}/pwned-TOKEN`, escaped: (t) => existsSync(join(s.outside, `pwned-${t}`)) }));

    test('write to /etc', () => {
      const cleanup = () => spawnSync('sh', ['-c', 'rm -f /etc/cordon-probe-*']);
      return checkProbe(s, {
        script: 'echo x > /etc/cordon-probe-TOKEN',
        escaped: (t) => existsSync(`/etc/cordon-probe-${t}`),
        reset: cleanup,
        noControl: id.uid === 0 ? undefined : 'an unprivileged user cannot write /etc even without cordon',
      }).finally(cleanup);
    });

    test('write through a symlink planted in the workspace', () =>
      checkProbe(s, {
        script: `ln -sf ${s.outside}/target.txt link-TOKEN && echo TOKEN >> link-TOKEN`,
        escaped: (t) => readFileSync(join(s.outside, 'target.txt'), 'utf8').includes(t),
      }));

    test('rename a file from outside into the workspace', () =>
      checkProbe(s, {
        script: `mv ${s.outside}/target.txt ./stolen-TOKEN`,
        escaped: () => !existsSync(join(s.outside, 'target.txt')),
        reset: () => {
          writeFileSync(join(s.outside, 'target.txt'), 'original\n');
          if (id.user) chownSync(join(s.outside, 'target.txt'), id.uid, id.gid);
        },
      }));

    test('create .git/hooks/pre-commit when hooks is missing, and when it exists', async () => {
      const hooks = join(s.workspace, '.git', 'hooks');
      rmSync(hooks, { recursive: true, force: true });
      await checkProbe(s, {
        script: 'mkdir -p .git/hooks && printf "#!/bin/sh\\necho TOKEN\\n" > .git/hooks/pre-commit && chmod +x .git/hooks/pre-commit',
        escaped: () => existsSync(join(hooks, 'pre-commit')),
        reset: () => rmSync(hooks, { recursive: true, force: true }),
      });
      // cordon created the hooks directory, empty, as git init would: nothing else.
      assert.deepEqual(readdir(hooks), []);
      await checkProbe(s, {
        script: 'echo "#!/bin/sh" > .git/hooks/post-checkout',
        escaped: () => existsSync(join(hooks, 'post-checkout')),
        reset: () => rmSync(join(hooks, 'post-checkout'), { force: true }),
      });
    });

    test('replace .git/hooks by renaming it away', () =>
      checkProbe(s, {
        script: 'mv .git/hooks .git/hooks-old-TOKEN && mkdir .git/hooks && echo evil > .git/hooks/pre-commit',
        escaped: () => existsSync(join(s.workspace, '.git', 'hooks', 'pre-commit')),
        reset: () => {
          spawnSync('sh', ['-c', `rm -rf .git/hooks && mv .git/hooks-old-* .git/hooks`], { cwd: s.workspace });
        },
      }));

    test('edit .git/config (core.fsmonitor would run a program on the next git status)', () =>
      checkProbe(s, {
        script: 'git config core.fsmonitor "echo TOKEN"',
        escaped: (t) => readFileSync(join(s.workspace, '.git', 'config'), 'utf8').includes(t),
        reset: () => spawnSync('git', ['config', '--unset', 'core.fsmonitor'], { cwd: s.workspace }),
      }));

    test('rewrite a .git file (a worktree or submodule pointer) to redirect git elsewhere', async () => {
      // A linked worktree inside the workspace: its .git is a file naming its git dir.
      spawnSync('sh', ['-c', 'git -c safe.directory="*" commit -q --allow-empty -m init && git -c safe.directory="*" worktree add -q wt -b wt'], { cwd: s.workspace, env: s.env });
      if (id.user) spawnSync('chown', ['-R', `${id.uid}:${id.gid}`, s.workspace]);
      const gitFile = join(s.workspace, 'wt', '.git');
      assert.match(readFileSync(gitFile, 'utf8'), /^gitdir: /);
      await checkProbe(s, {
        script: 'echo "gitdir: /tmp/evil-TOKEN" > wt/.git',
        escaped: (t) => readFileSync(gitFile, 'utf8').includes(t),
        reset: () => spawnSync('git', ['-c', 'safe.directory=*', 'worktree', 'repair'], { cwd: s.workspace, env: s.env }),
      });
    });

    test('creating .git/commondir (it would redirect git to other hooks) is reported', async () => {
      const r = await cordonSh(s, 'mkdir -p evil/hooks && echo ../evil > .git/commondir; true');
      assert.match(r.stderr, /cordon: the command created .*\.git\/commondir, which your tools may run later; review it/);
    });

    test('read ~/.ssh/id_rsa', () =>
      checkProbe(s, { script: 'cat "$HOME/.ssh/id_rsa"; ls "$HOME/.ssh"', escaped: (_t, out) => out.stdout.includes('PRIVATE KEY MATERIAL') || out.stdout.includes('id_rsa') }));

    test('see or signal a host process', async () => {
      const probe = (pid: number) => `test -e /proc/${pid}/cmdline && echo SEEN; kill -KILL ${pid} 2>/dev/null; true`;
      const gone = async (pid: number) => {
        for (let i = 0; i < 40 && existsSync(`/proc/${pid}`); i++) await sleep(25);
        return !existsSync(`/proc/${pid}`);
      };
      const control = await startVictim(s);
      try {
        const bare = await bareSh(s, probe(control.pid));
        assert.match(bare.stdout, /SEEN/, 'control: the probe sees a host process without cordon');
        assert.ok(await gone(control.pid), 'control: and kills it');
      } finally {
        control.stop();
      }
      const victim = await startVictim(s);
      try {
        const r = await cordonSh(s, probe(victim.pid));
        assert.ok(!r.stdout.includes('SEEN'), 'the host process is not visible in the sandbox');
        await sleep(100);
        assert.ok(existsSync(`/proc/${victim.pid}`), 'the host process survived');
      } finally {
        victim.stop();
      }
    });

    test('connect to a TCP listener on the host loopback', async () => {
      const got: string[] = [];
      const server = net.createServer((c) => c.on('data', (d) => got.push(String(d))));
      await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
      const port = (server.address() as net.AddressInfo).port;
      try {
        await checkProbe(s, {
          script: `python3 -c "import socket; s=socket.create_connection(('127.0.0.1',${port}),2); s.sendall(b'TOKEN'); s.close()"; sleep 0.2`,
          escaped: (t) => got.join('').includes(t),
        });
      } finally {
        server.close();
      }
    });

    for (const where of ['the host /tmp', 'an unusual readable place']) {
      test(`connect to a unix socket the host opened in ${where}`, async () => {
        const dir = where === 'the host /tmp' ? `/tmp/cordon-sock-${process.pid}-${Date.now()}` : join(s.base, 'odd', 'place');
        mkdirSync(dir, { recursive: true, mode: 0o755 });
        const path = join(dir, 'agent.sock');
        const got: string[] = [];
        const server = net.createServer((c) => c.on('data', (d) => got.push(String(d))));
        await new Promise<void>((r) => server.listen(path, r));
        spawnSync('chmod', ['777', path]);
        try {
          await checkProbe(s, {
            script: `python3 -c "import socket; s=socket.socket(socket.AF_UNIX); s.connect('${path}'); s.sendall(b'TOKEN'); s.close()"; sleep 0.2`,
            escaped: (t) => got.join('').includes(t),
          });
        } finally {
          server.close();
          rmSync(dir, { recursive: true, force: true });
        }
      });
    }

    test('a daemon started with setsid outlives the command', async () => {
      const m = marker();
      try {
        await checkProbe(s, {
          script: `setsid -f sh -c "sleep 300; : ${m}-TOKEN" </dev/null >/dev/null 2>&1; sleep 0.2`,
          escaped: (t) => pidsMatching(`${m}-${t}`).length > 0,
          reset: () => killMatching(m),
        });
      } finally {
        killMatching(m);
      }
    });

    test('nothing cordon leaves behind changes git status or outlives it, even after SIGKILL', async () => {
      rmSync(join(s.workspace, '.git', 'hooks'), { recursive: true, force: true });
      const status = () => spawnSync('git', ['status', '--porcelain', '--ignored'], { cwd: s.workspace, encoding: 'utf8' }).stdout;
      const before = status();
      const m = marker();
      const run = cordonSh(s, `sleep 30; : ${m}`);
      const sandboxed = () => processesMatching(m).filter((p) => p.args.startsWith('sh -c') || p.args.startsWith('sleep'));
      for (let i = 0; i < 100 && !sandboxed().length; i++) await sleep(50);
      assert.ok(sandboxed().length, 'the command is running in the sandbox');
      const cordon = processesMatching(m).filter((p) => p.args.startsWith(process.execPath) && p.args.includes('cordon.mjs run'));
      assert.equal(cordon.length, 1, JSON.stringify(cordon));
      process.kill(cordon[0]!.pid, 'SIGKILL');
      for (let i = 0; i < 40 && sandboxed().length; i++) await sleep(50);
      assert.deepEqual(sandboxed(), [], 'no sandboxed process outlives a killed cordon');
      assert.equal(status(), before, 'git status is unchanged');
      await run;
    });
  });
}

function readdir(p: string): string[] {
  return spawnSync('ls', ['-A', p], { encoding: 'utf8' }).stdout.split('\n').filter(Boolean);
}
