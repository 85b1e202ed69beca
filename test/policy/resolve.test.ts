import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, realpathSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { findGitDirs } from '../../src/policy/gitdirs.js';
import { resolvePolicy, type ResolveContext } from '../../src/policy/resolve.js';

let base: string;
const git = (cwd: string, ...args: string[]) => {
  const r = spawnSync('git', ['-c', 'protocol.file.allow=always', ...args], {
    cwd,
    encoding: 'utf8',
    env: { ...process.env, GIT_AUTHOR_NAME: 't', GIT_AUTHOR_EMAIL: 't@t', GIT_COMMITTER_NAME: 't', GIT_COMMITTER_EMAIL: 't@t' },
  });
  assert.equal(r.status, 0, r.stderr);
};

function ctx(cwd: string, extra: Partial<ResolveContext> = {}): ResolveContext {
  return { cwd, home: join(base, 'home'), env: { HOME: join(base, 'home') }, totalMemoryBytes: 8 * 1024 ** 3, cacheDir: join(base, 'cache'), ...extra };
}

before(() => {
  base = realpathSync(mkdtempSync(join(tmpdir(), 'cordon-resolve-')));
  mkdirSync(join(base, 'home', '.ssh'), { recursive: true });
  mkdirSync(join(base, 'home', '.aws'), { recursive: true });
  writeFileSync(join(base, 'home', '.npmrc'), 'token');
});
after(() => rmSync(base, { recursive: true, force: true }));

describe('git directories inside writable roots', () => {
  test('nested repos at any depth, submodules and linked worktrees are all protected', () => {
    const ws = join(base, 'ws1');
    mkdirSync(ws);
    git(ws, 'init', '-q', '-b', 'main');
    writeFileSync(join(ws, 'f'), 'x');
    git(ws, 'add', 'f');
    git(ws, 'commit', '-qm', 'init');
    // A nested repository deep inside, a submodule, and a node_modules repo (skipped by design).
    const deep = join(ws, 'a', 'b', 'c', 'vendor');
    mkdirSync(deep, { recursive: true });
    git(deep, 'init', '-q');
    const lib = join(base, 'lib');
    mkdirSync(lib);
    git(lib, 'init', '-q', '-b', 'main');
    writeFileSync(join(lib, 'l'), 'l');
    git(lib, 'add', 'l');
    git(lib, 'commit', '-qm', 'lib');
    git(ws, 'submodule', 'add', '-q', lib, 'libs/lib');
    // A linked worktree of ws placed outside ws.
    const wt = join(base, 'wt');
    git(ws, 'worktree', 'add', '-q', wt, '-b', 'feature');

    const { policy } = resolvePolicy({}, ctx(ws));
    const prot = policy.protected.map((p) => `${p.path}|${p.reason}|${p.exists}`);
    for (const expected of [
      `${ws}/.git/hooks|git-hooks|true`,
      `${ws}/.git/config|git-config|true`,
      `${deep}/.git/hooks|git-hooks|true`,
      `${ws}/.git/modules/libs/lib/hooks|git-hooks|true`,
      `${ws}/.git/modules/libs/lib/config|git-config|true`,
    ])
      assert.ok(prot.includes(expected), `missing ${expected} in\n${prot.join('\n')}`);

    // From inside the worktree, the common dir (ws/.git) must be writable for commits, with its
    // hooks and config protected.
    const fromWt = resolvePolicy({}, ctx(wt)).policy;
    assert.ok(fromWt.writableRoots.some((r) => r.path === join(ws, '.git')), JSON.stringify(fromWt.writableRoots));
    assert.ok(fromWt.protected.some((p) => p.path === join(ws, '.git', 'hooks')));
    assert.ok(fromWt.protected.some((p) => p.path === join(ws, '.git', 'config')));
  });

  test('the scan is cached and revalidated incrementally: a new nested repo is found', () => {
    const ws = join(base, 'ws2');
    for (let i = 0; i < 50; i++) mkdirSync(join(ws, `d${i}`, 'sub'), { recursive: true });
    const cache = join(base, 'cache2');
    const first = findGitDirs(ws, cache);
    assert.equal(first.stats.fromCache, false);
    assert.equal(first.gitDirs.length, 0);
    // Wait past the racy window, then scan again: nothing is re-read.
    spawnSync('sleep', ['0.1']);
    findGitDirs(ws, cache); // settles racily-fresh entries
    const second = findGitDirs(ws, cache);
    assert.equal(second.stats.fromCache, true);
    assert.equal(second.stats.dirsRead, 0, 'an unchanged tree is only stat-ed');
    git(join(ws, 'd7', 'sub'), 'init', '-q');
    const third = findGitDirs(ws, cache);
    assert.deepEqual(third.gitDirs, [join(ws, 'd7', 'sub', '.git')]);
    assert.ok(third.stats.dirsRead < 5, `only changed directories are read (read ${third.stats.dirsRead})`);
  });
});

describe('resolution', () => {
  test('defaults: workspace writable, secrets hidden, absent hooks dir planned', () => {
    const ws = join(base, 'ws3');
    mkdirSync(join(ws, '.git'), { recursive: true });
    writeFileSync(join(ws, '.git', 'HEAD'), 'ref: refs/heads/main\n');
    writeFileSync(join(ws, '.git', 'config'), '');
    const { policy } = resolvePolicy({}, ctx(ws));
    assert.deepEqual(policy.writableRoots, [{ path: ws, reason: 'workspace' }]);
    assert.deepEqual(policy.denyRead.map((d) => d.path), [join(base, 'home', '.aws'), join(base, 'home', '.npmrc'), join(base, 'home', '.ssh')]);
    const hooks = policy.protected.find((p) => p.reason === 'git-hooks');
    assert.deepEqual(hooks, { path: join(ws, '.git', 'hooks'), kind: 'dir', exists: false, reason: 'git-hooks', root: ws });
    assert.equal(policy.network.mode, 'off');
  });

  test('allowRead re-opens a default secret; read-only mode has no writable root', () => {
    const ws = join(base, 'ws4');
    mkdirSync(ws);
    const r = resolvePolicy({ mode: 'read-only', filesystem: { allowRead: ['~/.npmrc'] } }, ctx(ws)).policy;
    assert.deepEqual(r.writableRoots, []);
    assert.ok(!r.denyRead.some((d) => d.path.endsWith('.npmrc')));
  });

  test('paths: relative paths may not escape, missing roots and unset variables are errors', () => {
    const ws = join(base, 'ws5');
    mkdirSync(ws);
    assert.throws(() => resolvePolicy({ filesystem: { write: ['../elsewhere'] } }, ctx(ws)), /filesystem\.write\[0\]: "\.\.\/elsewhere" escapes the workspace/);
    assert.throws(() => resolvePolicy({ filesystem: { write: ['/no/such/dir'] } }, ctx(ws)), /filesystem\.write\[0\]: \/no\/such\/dir is not an existing directory/);
    assert.throws(() => resolvePolicy({ sockets: { allow: ['$NO_SUCH_VAR'] } }, ctx(ws)), /sockets\.allow\[0\]: "\$NO_SUCH_VAR": \$NO_SUCH_VAR is not set/);
    assert.throws(() => resolvePolicy({ workspace: '/no/such/ws' }, ctx(ws)), /workspace: \/no\/such\/ws is not an existing directory/);
  });

  test('a writable root that is a symlink is reported, and its target is what becomes writable', () => {
    const ws = join(base, 'ws6');
    mkdirSync(ws);
    const target = join(base, 'real-cache');
    mkdirSync(target);
    symlinkSync(target, join(base, 'cache-link'));
    const r = resolvePolicy({ filesystem: { write: [join(base, 'cache-link')] } }, ctx(ws)).policy;
    assert.ok(r.writableRoots.some((w) => w.path === target));
    assert.match(r.warnings.join('\n'), /cache-link is a symlink to .*real-cache; .*real-cache is what becomes writable/);
  });

  test('a policy file inside the workspace is refused: the sandbox could rewrite it', () => {
    const ws = join(base, 'ws7');
    mkdirSync(ws);
    writeFileSync(join(ws, 'cordon.json'), '{}');
    assert.throws(() => resolvePolicy({}, ctx(ws, { policyFile: join(ws, 'cordon.json') })), /--policy: .*cordon\.json lies inside the writable root/);
  });
});
