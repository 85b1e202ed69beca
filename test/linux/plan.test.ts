import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { LinuxHostFacts } from '../../src/linux/host.js';
import { compileLinuxPlan } from '../../src/linux/plan.js';
import type { ResolvedPolicy } from '../../src/policy/types.js';

const host: LinuxHostFacts = {
  uid: 1000,
  gid: 1000,
  arch: 'x86_64',
  bwrap: '/usr/bin/bwrap',
  launcher: '/opt/cordon/build/cordon-launcher',
  installDir: '/opt/cordon',
  hostSockets: ['/run/docker.sock', '/home/u/.local/share/agent.sock', '/srv/odd/place.sock', '/home/u/.ssh/agent.sock'],
  resolvConf: '/run/systemd/resolve/stub-resolv.conf',
};

function policy(over: Partial<ResolvedPolicy> = {}): ResolvedPolicy {
  return {
    mode: 'workspace-write',
    workspace: '/tmp/ws',
    cwd: '/tmp/ws',
    writableRoots: [{ path: '/tmp/ws', reason: 'workspace' }],
    protected: [
      { path: '/tmp/ws/.git/hooks', kind: 'dir', exists: false, reason: 'git-hooks', root: '/tmp/ws' },
      { path: '/tmp/ws/.git/config', kind: 'file', exists: true, reason: 'git-config', root: '/tmp/ws' },
      { path: '/tmp/ws/.vscode', kind: 'dir', exists: false, reason: 'runs-code-later', root: '/tmp/ws' },
      { path: '/tmp/ws/sub/deep/.git/hooks', kind: 'dir', exists: true, reason: 'git-hooks', root: '/tmp/ws' },
    ],
    denyRead: [
      { path: '/home/u/.ssh', kind: 'dir', reason: 'secret' },
      { path: '/home/u/.npmrc', kind: 'file', reason: 'secret' },
      { path: '/tmp/ws/.env', kind: 'file', reason: 'user' },
    ],
    exposedSockets: ['/srv/odd/place.sock'],
    network: { mode: 'off', allow: [], deny: [], transparent: false },
    env: { vars: { PATH: '/usr/bin', TMP: '/var/x' }, removed: ['GITHUB_TOKEN'] },
    limits: { timeoutMs: null, memoryBytes: null, pids: 4096, cpu: null },
    allowReduced: false,
    sources: ['defaults'],
    warnings: [],
    ...over,
  };
}

/** [op, path] pairs in mount order. */
function mounts(args: string[]): [string, string][] {
  const out: [string, string][] = [];
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    if (['--bind', '--ro-bind'].includes(a)) out.push([a, args[i + 2]!]), (i += 2);
    else if (['--tmpfs', '--dir', '--remount-ro'].includes(a)) out.push([a, args[i + 1]!]), (i += 1);
    else if (a === '--ro-bind-data') out.push([a, args[i + 2]!]), (i += 2);
  }
  return out;
}

test('mounts: parents before children, protected paths after their writable root, masks last', () => {
  const plan = compileLinuxPlan(policy(), host);
  const m = mounts(plan.bwrapArgs);
  const at = (op: string, path: string) => m.findIndex(([o, p]) => o === op && p === path);
  assert.ok(at('--tmpfs', '/tmp') < at('--bind', '/tmp/ws'), 'the workspace under /tmp is bound after the private /tmp');
  assert.ok(at('--bind', '/tmp/ws') < at('--bind', '/tmp/ws/.git'), 'ancestor pinned after the root');
  assert.ok(at('--bind', '/tmp/ws/.git') < at('--ro-bind', '/tmp/ws/.git/hooks'));
  assert.ok(at('--ro-bind', '/tmp/ws/.git/config') > 0);
  assert.ok(at('--bind', '/tmp/ws/sub') > 0 && at('--bind', '/tmp/ws/sub/deep') > 0 && at('--bind', '/tmp/ws/sub/deep/.git') > 0, 'every ancestor is pinned');
  assert.ok(at('--ro-bind-data', '/tmp/ws/.env') > at('--bind', '/tmp/ws'), 'a hidden file inside the workspace stays hidden');
  assert.ok(at('--tmpfs', '/home/u/.ssh') > 0 && m.some(([o, p]) => o === '--remount-ro' && p === '/home/u/.ssh'));
  for (let i = 1; i < m.length; i++) {
    for (let j = 0; j < i; j++) {
      // No mount is placed below a later mount of one of its ancestors (which would hide it).
      const [, later] = m[i]!;
      const [, earlier] = m[j]!;
      assert.ok(!(earlier.startsWith(later + '/') && m[i]![0] !== '--remount-ro'), `${later} mounted after its descendant ${earlier}`);
    }
  }
});

test('absent protected paths: hooks are created empty, others are watched, never placeholder files', () => {
  const plan = compileLinuxPlan(policy(), host);
  assert.deepEqual(plan.ensureDirs, ['/tmp/ws/.git/hooks']);
  assert.deepEqual(plan.watchCreated, ['/tmp/ws/.vscode']);
  assert.ok(!plan.bwrapArgs.includes('/tmp/ws/.vscode'));
});

test('host sockets: masked wherever they are, unless exposed; service dirs are private tmpfs', () => {
  const plan = compileLinuxPlan(policy(), host);
  const m = mounts(plan.bwrapArgs);
  assert.ok(m.some(([o, p]) => o === '--ro-bind-data' && p === '/home/u/.local/share/agent.sock'));
  assert.ok(!m.some(([, p]) => p === '/run/docker.sock'), 'covered by the /run tmpfs');
  assert.ok(m.some(([o, p]) => o === '--ro-bind' && p === '/srv/odd/place.sock'), 'exposed by policy');
  assert.ok(!m.some(([o, p]) => o === '--ro-bind-data' && p === '/srv/odd/place.sock'));
  for (const d of ['/tmp', '/run', '/var/tmp', '/dev/shm']) assert.ok(m.some(([o, p]) => o === '--tmpfs' && p === d), d);
});

test('namespaces, capabilities and network', () => {
  const off = compileLinuxPlan(policy(), host).bwrapArgs;
  for (const flag of ['--unshare-user', '--disable-userns', '--unshare-pid', '--unshare-ipc', '--unshare-uts', '--unshare-net', '--die-with-parent', '--new-session', '--as-pid-1'])
    assert.ok(off.includes(flag), flag);
  assert.deepEqual(off.slice(off.indexOf('--cap-drop'), off.indexOf('--cap-drop') + 2), ['--cap-drop', 'ALL']);
  const full = compileLinuxPlan(policy({ network: { mode: 'full', allow: [], deny: [], transparent: false } }), host).bwrapArgs;
  assert.ok(!full.includes('--unshare-net'));
  assert.ok(mounts(full).some(([o, p]) => o === '--ro-bind' && p === '/run/systemd/resolve/stub-resolv.conf'), 'DNS config survives the /run tmpfs');
});

test('environment: private TMPDIR, marker, no host TMP', () => {
  const plan = compileLinuxPlan(policy(), host);
  assert.equal(plan.env.TMPDIR, '/tmp');
  assert.equal(plan.env.TMP, '/tmp');
  assert.equal(plan.env.CORDON_SANDBOX, '1');
  assert.equal(plan.env.XDG_RUNTIME_DIR, '/run/user/1000');
});

test('landlock: writes beneath writable roots and the sandbox-private dirs only; required unless reduced', () => {
  const plan = compileLinuxPlan(policy(), host);
  assert.deepEqual(plan.landlock!.rules.map((r) => r.path), ['/tmp/ws', '/tmp', '/var/tmp', '/dev', '/run']);
  assert.equal(plan.landlock!.requiredAbi, 1);
  assert.equal(compileLinuxPlan(policy({ allowReduced: true }), host).landlock!.requiredAbi, 0);
  assert.equal(compileLinuxPlan(policy({ mode: 'full-access', writableRoots: [{ path: '/', reason: 'user' }] }), host).landlock, null);
});

test('cordon installed inside a writable root is kept read-only', () => {
  const plan = compileLinuxPlan(policy({ writableRoots: [{ path: '/opt', reason: 'user' }] }), host);
  assert.ok(mounts(plan.bwrapArgs).some(([o, p]) => o === '--ro-bind' && p === '/opt/cordon'));
});
