// The cgroup layout parsers and the delegation walk, on sample hosts (no OS), plus one check that
// detection on this machine agrees with what the kernel lets this user do.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, rmdirSync } from 'node:fs';
import { cgroupDir, detectCgroupFacts, parseCgroupMounts, parseProcCgroup } from '../../../src/linux/limits/detect.js';
import { HYBRID_MOUNTINFO, USER_SERVICE, hybridRoot, hybridUser, v2ContainerRoot, v2DelegatedUser, v2Root, v2SshUser } from './fixtures/hosts.js';

test('mountinfo: v1 hierarchies with their controllers, the cgroup2 mount, nothing else', () => {
  const mounts = parseCgroupMounts(HYBRID_MOUNTINFO);
  assert.deepEqual(
    mounts.map((m) => [m.version, m.mountPoint, m.options.join(',')]),
    [
      [1, '/sys/fs/cgroup/cpu', 'cpu'],
      [1, '/sys/fs/cgroup/cpuacct', 'cpuacct'],
      [1, '/sys/fs/cgroup/memory', 'memory'],
      [1, '/sys/fs/cgroup/pids', 'pids'],
      [1, '/sys/fs/cgroup/systemd', 'name=systemd'],
      [2, '/sys/fs/cgroup/unified', ''],
    ],
  );
});

test('mountinfo: co-mounted controllers, escaped mount points, non-root mount roots', () => {
  const [m] = parseCgroupMounts('50 31 0:40 /docker/abc /sys/fs/cgroup/cpu\\040acct ro,nosuid - cgroup cgroup ro,cpu,cpuacct');
  assert.deepEqual(m, { version: 1, mountPoint: '/sys/fs/cgroup/cpu acct', root: '/docker/abc', options: ['cpu', 'cpuacct'] });
  assert.equal(cgroupDir(m!, '/docker/abc/sub'), '/sys/fs/cgroup/cpu acct/sub');
  assert.equal(cgroupDir(m!, '/docker/abc'), '/sys/fs/cgroup/cpu acct');
  assert.equal(cgroupDir(m!, '/elsewhere'), null, 'a cgroup outside the mounted subtree is not reachable through it');
  assert.equal(cgroupDir({ mountPoint: '/sys/fs/cgroup', root: '/' }, '/'), '/sys/fs/cgroup');
});

test('/proc/self/cgroup: ids, controller lists, paths with colons', () => {
  assert.deepEqual(parseProcCgroup('4:memory:/a:b\n1:cpu,cpuacct:/\n0::/user.slice\n'), [
    { id: 4, controllers: ['memory'], path: '/a:b' },
    { id: 1, controllers: ['cpu', 'cpuacct'], path: '/' },
    { id: 0, controllers: [], path: '/user.slice' },
  ]);
});

test('hybrid host as root: v1 hierarchies beneath our own cgroup; the unified one offers no controllers', () => {
  const f = hybridRoot();
  assert.deepEqual(f.v1.map((h) => [h.controllers.join(','), h.own, h.writable]), [
    ['cpu', '/sys/fs/cgroup/cpu', true],
    ['cpuacct', '/sys/fs/cgroup/cpuacct', true],
    ['memory', '/sys/fs/cgroup/memory/process_api/abc', true],
    ['pids', '/sys/fs/cgroup/pids', true],
  ]);
  assert.equal(f.v2?.base, '/sys/fs/cgroup/unified');
  assert.deepEqual(f.v2?.available, []);
});

test('hybrid host as a user: nothing writable', () => {
  const f = hybridUser();
  assert.ok(f.v1.every((h) => !h.writable));
  assert.equal(f.v2?.base, null);
});

test('systemd user delegation: the base is user@UID.service, the topmost cgroup the user owns', () => {
  const f = v2DelegatedUser();
  assert.equal(f.v2?.own, `${USER_SERVICE}/app.slice/term.scope`);
  assert.equal(f.v2?.base, USER_SERVICE);
  assert.deepEqual(f.v2?.available, ['memory', 'pids', 'cpu']);
  assert.equal(f.v2?.canEnable, true);
});

test('ssh login outside the user manager: no delegation', () => {
  assert.equal(v2SshUser().v2?.base, null);
});

test('v2 as root: the real root cgroup (no cgroup.type) can enable controllers although it has processes', () => {
  const f = v2Root();
  assert.equal(f.v2?.base, '/sys/fs/cgroup');
  assert.equal(f.v2?.canEnable, true);
});

test('a container\'s namespace root holds processes: controllers cannot be enabled below it', () => {
  const f = v2ContainerRoot();
  assert.equal(f.v2?.base, '/sys/fs/cgroup');
  assert.equal(f.v2?.canEnable, false);
});

test('detection on this machine matches what the kernel allows: writable means a cgroup can really be created', (t) => {
  const f = detectCgroupFacts({ fresh: true });
  const candidates = [...f.v1.map((h) => ({ dir: h.own, writable: h.writable })), ...(f.v2 ? [{ dir: f.v2.base ?? f.v2.own, writable: !!f.v2.base }] : [])];
  if (candidates.length === 0) return t.skip('no cgroup hierarchy mounted');
  for (const c of candidates) {
    const probe = `${c.dir}/cordon-detect-probe-${process.pid}`;
    let made = false;
    try {
      mkdirSync(probe);
      made = true;
    } catch {
      made = false;
    } finally {
      if (made) rmdirSync(probe);
    }
    assert.equal(made, c.writable, `${c.dir}: detection says ${c.writable ? '' : 'not '}writable`);
  }
});
