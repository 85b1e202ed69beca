// `cordon doctor`'s limit checks on sample hosts, and on this machine for this user.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { detectCgroupFacts } from '../../../src/linux/limits/detect.js';
import { limitChecks } from '../../../src/linux/limits/doctor.js';
import { hybridRoot, hybridUser, v2ContainerRoot, v2DelegatedUser, v2SshUser } from './fixtures/hosts.js';

function byLimit(checks: ReturnType<typeof limitChecks>) {
  return Object.fromEntries(checks.map((c) => [c.limit, c]));
}

test('hybrid root: every limit by cgroup v1, no fixes needed', () => {
  const c = byLimit(limitChecks(hybridRoot()));
  for (const l of ['memory', 'pids', 'cpu']) {
    assert.equal(c[l]!.mechanism, 'cgroup-v1');
    assert.equal(c[l]!.ok, true);
    assert.equal(c[l]!.fix, undefined);
  }
  assert.equal(c.timeout!.mechanism, 'timer');
});

test('hybrid user: rlimits, CPU unenforced, and the fix names root or cgroup v2 with user delegation', () => {
  const c = byLimit(limitChecks(hybridUser()));
  assert.equal(c.memory!.mechanism, 'rlimit');
  assert.equal(c.memory!.ok, false, 'a per-process memory limit does not bound the sandbox');
  assert.equal(c.pids!.mechanism, 'rlimit');
  assert.equal(c.pids!.ok, true, 'RLIMIT_NPROC in the sandbox\'s user namespace bounds the sandbox');
  assert.equal(c.cpu!.mechanism, 'none');
  for (const l of ['memory', 'pids', 'cpu']) assert.match(c[l]!.fix ?? '', /cgroup v1 .* root.*systemd\.unified_cgroup_hierarchy=1/);
  assert.match(c.memory!.layer, /memory limit \(rlimit\)/);
});

test('ssh user on a v2 host: start cordon under the user manager', () => {
  const c = byLimit(limitChecks(v2SshUser()));
  assert.match(c.memory!.fix ?? '', /systemd-run --user --scope/);
});

test('delegated user without cpu: the fix is a Delegate= drop-in for user@.service', () => {
  const c = byLimit(limitChecks(v2DelegatedUser('memory pids')));
  assert.equal(c.memory!.mechanism, 'cgroup-v2');
  assert.equal(c.cpu!.mechanism, 'none');
  assert.match(c.cpu!.fix ?? '', /Delegate=cpu memory pids/);
});

test('container root whose cgroup holds processes: says why controllers cannot be enabled', () => {
  const c = byLimit(limitChecks(v2ContainerRoot()));
  assert.equal(c.pids!.mechanism, 'none');
  assert.match(c.pids!.fix ?? '', /holds processes/);
});

test('this machine, this user: a mechanism for every limit, and a fix wherever it is not a cgroup', () => {
  const checks = limitChecks(detectCgroupFacts({ fresh: true }));
  assert.deepEqual(checks.map((c) => c.limit), ['memory', 'pids', 'cpu', 'timeout']);
  for (const c of checks) {
    if (c.mechanism === 'rlimit' || c.mechanism === 'none') assert.ok(c.fix, `${c.limit}: no fix offered`);
  }
});
