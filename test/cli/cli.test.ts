// The command line: exit statuses, fail-closed handling of bad input, interactive use.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { CLI, cordonSh, identities, makeScene, runAs, type Scene } from '../helpers/env.js';

let s: Scene;
before(() => {
  s = makeScene(identities()[0]!);
});
after(() => s.cleanup());

const cordon = (args: string[], opts: { input?: string; env?: Record<string, string> } = {}) => runAs(s, [process.execPath, CLI, ...args], opts);

describe('exit status', () => {
  test("the command's own, 128+N for a signal, 124 on timeout, 126/127 when it cannot run", async () => {
    assert.equal((await cordonSh(s, 'exit 0')).code, 0);
    assert.equal((await cordonSh(s, 'exit 42')).code, 42);
    assert.equal((await cordonSh(s, 'kill -TERM $$')).code, 143);
    const t = await cordonSh(s, 'trap "" TERM; sleep 30', ['--timeout', '1']);
    assert.equal(t.code, 124);
    assert.match(t.stderr, /cordon: timed out after 1s/);
    const nf = await cordon(['run', '--', 'no-such-command-xyz']);
    assert.equal(nf.code, 127);
    assert.match(nf.stderr, /no-such-command-xyz: command not found in the sandbox/);
    // A PATH directory the sandbox cannot search does not turn "not found" into "not executable".
    mkdirSync(join(s.base, 'closed'), { mode: 0o000 });
    const closed = await cordon(['run', '--env-set', `PATH=${join(s.base, 'closed')}:/usr/bin:/bin`, '--', 'no-such-command-xyz']);
    assert.equal(closed.code, 127, closed.stderr);
    writeFileSync(join(s.workspace, 'not-exec.sh'), 'echo hi\n');
    const ne = await cordon(['run', '--', './not-exec.sh']);
    assert.equal(ne.code, 126, ne.stderr);
  });

  test('stdin, stdout and stderr pass through', async () => {
    const r = await cordon(['run', '--', 'sh', '-c', 'tr a-z A-Z; echo err >&2'], { input: 'hello\n' });
    assert.equal(r.stdout, 'HELLO\n');
    assert.equal(r.stderr, 'err\n');
  });
});

describe('fail closed on bad input: exit 2, one line naming the field and fix, nothing runs', () => {
  const cases: [string, string[], RegExp][] = [
    ['unknown flag', ['--frobnicate'], /^cordon: unknown flag --frobnicate; see `cordon --help`$/],
    ['bad mode', ['--mode', 'yolo'], /^cordon: --mode: expected one of read-only \| workspace-write \| full-access, got "yolo"; use one of those values$/],
    ['bad timeout', ['--timeout', 'soon'], /^cordon: --timeout: cannot read "soon" as a duration/],
    ['bad memory', ['--memory', 'lots'], /^cordon: --memory: cannot read "lots" as a size/],
    ['bad pids', ['--pids', 'many'], /^cordon: --pids: "many" is not a number/],
    ['missing writable root', ['--write', '/no/such/dir'], /^cordon: filesystem\.write\[0\]: \/no\/such\/dir is not an existing directory; create it or remove the entry$/],
    ['escaping relative path', ['--write', '../..'], /^cordon: filesystem\.write\[0\]: "\.\.\/\.\." escapes the workspace/],
    ['bad env-set', ['--env-set', 'NOVALUE'], /^cordon: --env-set: "NOVALUE" is not NAME=VALUE/],
    ['missing policy file', ['--policy', '/no/such/policy.json'], /^cordon: \/no\/such\/policy\.json: cannot read the policy file \(ENOENT\); check the path$/],
    ['domains with network off', ['--network', 'off', '--allow-domain', 'example.com'], /^cordon: network\.allow: domains are allowed only with network mode allow-list/],
  ];
  for (const [name, flags, message] of cases) {
    test(name, async () => {
      const flag = join(s.workspace, `ran-${name.replace(/\W/g, '')}`);
      const r = await cordon(['run', ...flags, '--', 'touch', flag]);
      assert.equal(r.code, 2, r.stderr);
      assert.match(r.stderr.trimEnd(), message);
      assert.equal(r.stderr.trimEnd().split('\n').length, 1, 'one line');
      assert.ok(!r.stderr.includes('    at '), 'no stack trace');
      assert.ok(!existsSync(flag), 'the command did not run');
    });
  }

  test('policy files: unknown fields, wrong types, bad JSON, inside the workspace', async () => {
    const dir = join(s.base, 'policies');
    mkdirSync(dir);
    const files: [string, string, RegExp][] = [
      ['unknown.json', '{"filesystem": {"writable": []}}', /unknown\.json: filesystem\.writable: unknown field; did you mean "write"\?/],
      ['type.json', '{"limits": {"pids": "lots"}}', /type\.json: limits\.pids: expected a positive whole number, got "lots"/],
      ['syntax.json', '{"mode": "read-only",}', /syntax\.json: not valid JSON/],
    ];
    for (const [file, text, message] of files) {
      writeFileSync(join(dir, file), text);
      const r = await cordon(['run', '--policy', join(dir, file), '--', 'true']);
      assert.equal(r.code, 2);
      assert.match(r.stderr, message);
    }
    writeFileSync(join(s.workspace, 'cordon.json'), '{}');
    const inside = await cordon(['run', '--policy', join(s.workspace, 'cordon.json'), '--', 'true']);
    assert.equal(inside.code, 2);
    assert.match(inside.stderr, /lies inside the writable root .* could rewrite it/);
  });

  test('a broken user config is an error, not a silent fallback', async () => {
    const cfgDir = join(s.home, '.config', 'cordon');
    mkdirSync(cfgDir, { recursive: true });
    writeFileSync(join(cfgDir, 'config.json'), '{"mode": "nope"}');
    try {
      const r = await cordon(['run', '--', 'true']);
      assert.equal(r.code, 2);
      assert.match(r.stderr, /config\.json: mode: expected one of/);
      assert.equal((await cordon(['run', '--no-user-config', '--', 'true'])).code, 0);
    } finally {
      spawnSync('rm', ['-rf', cfgDir]);
    }
  });
});

describe('information commands', () => {
  test('policy show prints the effective policy without environment values', async () => {
    const r = await cordon(['policy', 'show', '--write', s.outside], { env: { GITHUB_TOKEN: 'ghp_dont_print_me' } });
    assert.equal(r.code, 0, r.stderr);
    const p = JSON.parse(r.stdout) as { mode: string; writableRoots: { path: string }[]; env: { removed: string[] } };
    assert.equal(p.mode, 'workspace-write');
    assert.ok(p.writableRoots.some((w) => w.path === s.outside));
    assert.ok(p.env.removed.includes('GITHUB_TOKEN'));
    assert.ok(!r.stdout.includes('ghp_dont_print_me'));
  });

  test('doctor reports every layer and passes on this machine', async () => {
    const r = await cordon(['doctor']);
    assert.equal(r.code, 0, r.stdout);
    for (const layer of ['bubblewrap', 'user, pid, network and ipc namespaces', 'Landlock ABI', 'seccomp', 'end-to-end sandbox']) assert.match(r.stdout, new RegExp(`\\[ok\\] +${layer}`));
  });

  test('--explain lists the active layers', async () => {
    const r = await cordon(['run', '--explain', '--', 'true']);
    assert.equal(r.code, 0);
    assert.match(r.stderr, /cordon: \[on\]  landlock: writes only beneath writable roots/);
    assert.match(r.stderr, /cordon: \[on\]  seccomp/);
  });
});

describe('interactive use', () => {
  for (const id of identities()) {
    test(`cordon run -- bash on a terminal lets you type, with job control, as ${id.name}`, async () => {
      const scene = makeScene(id);
      try {
        // python3's pty module gives cordon a real terminal; we type into it.
        const driver = [
          'import os, pty, sys, time, select',
          'pid, fd = pty.fork()',
          'if pid == 0:',
          `    os.execvp(sys.argv[1], sys.argv[1:])`,
          'out = b""',
          'def pump(t):',
          '    global out',
          '    end = time.time() + t',
          '    while time.time() < end:',
          '        r, _, _ = select.select([fd], [], [], 0.05)',
          '        if r:',
          '            try: out += os.read(fd, 4096)',
          '            except OSError: return',
          'pump(1.5)',
          'os.write(fd, b"echo $((6*7)); tty; sleep 30\\n")',
          'pump(1.0)',
          'os.write(fd, b"\\x03")',
          'pump(0.5)',
          'os.write(fd, b"echo after-ctrl-c; exit 7\\n")',
          'pump(2.0)',
          '_, status = os.waitpid(pid, 0)',
          'sys.stdout.write(out.decode(errors="replace"))',
          'sys.stdout.write("\\nEXIT=%d\\n" % os.waitstatus_to_exitcode(status))',
        ].join('\n');
        const r = await runAs(scene, ['python3', '-c', driver, process.execPath, CLI, 'run', '--', 'bash', '--norc', '-i'], { timeoutMs: 30_000 });
        assert.match(r.stdout, /\b42\b/);
        assert.match(r.stdout, /\/dev\/pts\/\d+/, 'the shell has a terminal');
        assert.match(r.stdout, /after-ctrl-c/, 'Ctrl-C stopped the foreground job, not the shell');
        assert.match(r.stdout, /EXIT=7/);
        assert.ok(!/no job control/.test(r.stdout), r.stdout);
      } finally {
        scene.cleanup();
      }
    });
  }
});
