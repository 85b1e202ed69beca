// The limits planner on sample hosts: which mechanism each limit gets, and the exact cgroup writes
// and rlimits. No OS.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { RLIMIT } from '../../../src/linux/launcher-protocol.js';
import { CPU_PERIOD_US, NPROC_BACKSTOP_MARGIN, planLimits } from '../../../src/linux/limits/plan.js';
import type { ResolvedLimits } from '../../../src/policy/types.js';
import { USER_SERVICE, hybridRoot, hybridUser, noCgroupsRoot, v2ContainerRoot, v2DelegatedUser, v2Root, v2SshUser } from './fixtures/hosts.js';

const GiB = 1 << 30;
const ALL: ResolvedLimits = { timeoutMs: 30_000, memoryBytes: 2 * GiB, pids: 512, cpu: 1.5 };
const NONE: ResolvedLimits = { timeoutMs: null, memoryBytes: null, pids: null, cpu: null };

test('hybrid host as root: cgroup v1 for memory (swap counted), pids and cpu; no rlimit needed for root', () => {
  const p = planLimits(ALL, hybridRoot());
  assert.deepEqual([p.memory.mechanism, p.pids.mechanism, p.cpu.mechanism], ['cgroup-v1', 'cgroup-v1', 'cgroup-v1']);
  assert.deepEqual(
    p.cgroups.map((c) => [c.version, c.base, c.writes.map((w) => `${w.file}=${w.value}`)]),
    [
      [1, '/sys/fs/cgroup/memory/process_api/abc', [`memory.limit_in_bytes=${2 * GiB}`, `memory.memsw.limit_in_bytes=${2 * GiB}`, 'memory.swappiness=0']],
      [1, '/sys/fs/cgroup/pids', ['pids.max=512']],
      [1, '/sys/fs/cgroup/cpu', [`cpu.cfs_period_us=${CPU_PERIOD_US}`, 'cpu.cfs_quota_us=150000']],
    ],
  );
  assert.deepEqual(p.rlimits, [], 'RLIMIT_NPROC would be ignored for root anyway');
  assert.equal(p.tmpfsBytes, null);
  assert.equal(p.timeoutMs, 30_000);
  assert.deepEqual(p.warnings, []);
});

test('hybrid host as a user: RLIMIT_DATA per process, RLIMIT_NPROC for the sandbox, CPU not enforced', () => {
  const p = planLimits(ALL, hybridUser());
  assert.equal(p.memory.mechanism, 'rlimit');
  assert.equal(p.memory.scope, 'process');
  assert.equal(p.pids.mechanism, 'rlimit');
  assert.equal(p.pids.scope, 'sandbox');
  assert.equal(p.cpu.mechanism, 'none');
  assert.deepEqual(p.cgroups, []);
  assert.ok(!p.rlimits.some((r) => r.resource === RLIMIT.AS), 'RLIMIT_AS breaks WebAssembly in Node');
  assert.deepEqual(p.rlimits, [
    { resource: RLIMIT.DATA, soft: BigInt(2 * GiB), hard: BigInt(2 * GiB) },
    { resource: RLIMIT.NPROC, soft: 512n, hard: 512n },
  ]);
  assert.equal(p.tmpfsBytes, 2 * GiB, 'the private tmpfs is capped when memory is not a cgroup limit');
  assert.match(p.warnings.join('\n'), /CPU limit 1\.5 is not enforced/);
});

test('systemd user delegation: one cgroup v2 with all three controllers, swap off, plus an NPROC backstop', () => {
  const p = planLimits(ALL, v2DelegatedUser());
  assert.deepEqual([p.memory.mechanism, p.pids.mechanism, p.cpu.mechanism], ['cgroup-v2', 'cgroup-v2', 'cgroup-v2']);
  assert.equal(p.cgroups.length, 1);
  const c = p.cgroups[0]!;
  assert.equal(c.base, USER_SERVICE);
  assert.deepEqual(c.controllers, ['memory', 'pids', 'cpu']);
  assert.deepEqual(c.enableAtBase, [], 'systemd already enabled them');
  assert.deepEqual(c.writes, [
    { file: 'memory.max', value: String(2 * GiB) },
    { file: 'memory.swap.max', value: '0', optional: true },
    { file: 'pids.max', value: '512' },
    { file: 'cpu.max', value: `150000 ${CPU_PERIOD_US}` },
  ]);
  // The cgroup refuses first (it also counts the launcher), so the refusal is recorded.
  assert.deepEqual(p.rlimits, [{ resource: RLIMIT.NPROC, soft: BigInt(512 + NPROC_BACKSTOP_MARGIN), hard: BigInt(512 + NPROC_BACKSTOP_MARGIN) }]);
  assert.equal(p.tmpfsBytes, null);
});

test('a delegation without the cpu controller: memory and pids in v2, CPU not enforced', () => {
  const p = planLimits(ALL, v2DelegatedUser('memory pids'));
  assert.deepEqual([p.memory.mechanism, p.pids.mechanism, p.cpu.mechanism], ['cgroup-v2', 'cgroup-v2', 'none']);
  assert.deepEqual(p.cgroups[0]!.controllers, ['memory', 'pids']);
});

test('v2 as root: controllers missing from the root\'s subtree_control are enabled there first', () => {
  const facts = v2Root();
  facts.v2!.enabled = ['memory'];
  const p = planLimits(ALL, facts);
  assert.deepEqual(p.cgroups[0]!.enableAtBase, ['pids', 'cpu']);
  assert.equal(p.cgroups[0]!.base, '/sys/fs/cgroup');
});

test('a container root with processes and no enabled controllers: rlimits, and pids unenforced for root', () => {
  const p = planLimits(ALL, v2ContainerRoot());
  assert.deepEqual([p.memory.mechanism, p.pids.mechanism, p.cpu.mechanism], ['rlimit', 'none', 'none']);
  assert.match(p.warnings.join('\n'), /process limit 512 is not enforced: .*root/);
});

test('ssh user without delegation on v2 falls back like the hybrid user', () => {
  const p = planLimits(ALL, v2SshUser());
  assert.deepEqual([p.memory.mechanism, p.pids.mechanism, p.cpu.mechanism], ['rlimit', 'rlimit', 'none']);
});

test('root without any writable cgroup: memory by RLIMIT_DATA only, processes not enforced', () => {
  const p = planLimits({ ...NONE, memoryBytes: GiB, pids: 64 }, noCgroupsRoot());
  assert.equal(p.memory.mechanism, 'rlimit');
  assert.equal(p.pids.mechanism, 'none');
  assert.deepEqual(p.rlimits.map((r) => r.resource), [RLIMIT.DATA]);
});

test('no limits in the policy: nothing to create, nothing to set', () => {
  for (const facts of [hybridRoot(), hybridUser(), v2DelegatedUser()]) {
    const p = planLimits(NONE, facts);
    assert.deepEqual(p.cgroups, []);
    assert.deepEqual(p.rlimits, []);
    assert.deepEqual([p.memory.mechanism, p.pids.mechanism, p.cpu.mechanism], ['none', 'none', 'none']);
    assert.deepEqual(p.warnings, []);
  }
});

test('only the limits that are set create cgroups (the defaults: memory and pids, no cpu)', () => {
  const p = planLimits({ timeoutMs: null, memoryBytes: 18 * GiB, pids: 4096, cpu: null }, hybridRoot());
  assert.deepEqual(p.cgroups.map((c) => c.controllers.join(',')), ['memory', 'pids']);
});

test('tiny CPU quotas are raised to the kernel minimum instead of being rejected', () => {
  const p = planLimits({ ...NONE, cpu: 0.001 }, hybridRoot());
  assert.deepEqual(p.cgroups[0]!.writes.at(-1), { file: 'cpu.cfs_quota_us', value: '1000' });
});

test('an RLIMIT_DATA limit too small for Node warns: Node hangs instead of failing', () => {
  const p = planLimits({ ...NONE, memoryBytes: 32 << 20 }, hybridUser());
  assert.match(p.warnings.join('\n'), /Node\.js hangs/);
  assert.deepEqual(planLimits({ ...NONE, memoryBytes: 256 << 20 }, hybridUser()).warnings, []);
});
