// Which limit ended a command, from cgroup counters or rusage. No OS.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { CgroupUsage } from '../../../src/linux/limits/cgroup.js';
import { parseKeyedCounters } from '../../../src/linux/limits/cgroup.js';
import { planLimits } from '../../../src/linux/limits/plan.js';
import { reportLimits, type CommandEnd } from '../../../src/linux/limits/report.js';
import { hybridRoot, hybridUser } from './fixtures/hosts.js';

const MiB = 1 << 20;
const limits = { timeoutMs: 30_000, memoryBytes: 256 * MiB, pids: 64, cpu: null };
const cgroupPlan = planLimits(limits, hybridRoot());
const rlimitPlan = planLimits(limits, hybridUser());
const quiet: CgroupUsage = { peakMemoryBytes: 40 * MiB, oomKills: 0, pidsRefused: 0, peakPids: 3, cpuMs: 120, cpuThrottledMs: null, throttledPeriods: null };
const ok: CommandEnd = { code: 0, signal: null, timedOut: false, rusage: { userMs: 80, sysMs: 20, maxRssKb: 30 * 1024 } };

test('a clean run: usage from the cgroup, no limit hit', () => {
  const r = reportLimits(cgroupPlan, ok, quiet);
  assert.deepEqual(r.usage, { peakMemoryBytes: 40 * MiB, cpuMs: 120 });
  assert.equal(r.peakMemoryScope, 'sandbox');
  assert.equal(r.limitHit, null);
  assert.equal(r.reason, null);
  assert.deepEqual(r.notes, []);
});

test('OOM kill of a failed command: memory, with the limit and the count in the reason', () => {
  const r = reportLimits(cgroupPlan, { ...ok, code: null, signal: 9 }, { ...quiet, oomKills: 1, peakMemoryBytes: 256 * MiB });
  assert.equal(r.limitHit, 'memory');
  assert.equal(r.evidence, 'kernel');
  assert.equal(r.reason, 'memory limit 256 MiB reached: the kernel killed 1 process (peak 256 MiB)');
});

test('refused forks of a failed command: pids', () => {
  const r = reportLimits(cgroupPlan, { ...ok, code: 3 }, { ...quiet, pidsRefused: 12 });
  assert.equal(r.limitHit, 'pids');
  assert.equal(r.reason, 'process limit 64 reached: the kernel refused 12 forks');
});

test('a limit that fired but did not end the command is a note, not the cause', () => {
  const r = reportLimits(cgroupPlan, ok, { ...quiet, pidsRefused: 2, oomKills: 1, cpuThrottledMs: 1500 });
  assert.equal(r.limitHit, null);
  assert.deepEqual(r.notes, ['the memory limit was reached and the kernel killed 1 process', 'the process limit refused 2 forks', 'the CPU quota held the sandbox back for 1500 ms']);
});

test('the timer wins: a timed-out command reports timeout even if it also ran out of memory', () => {
  const r = reportLimits(cgroupPlan, { ...ok, code: null, signal: 15, timedOut: true }, { ...quiet, oomKills: 1 });
  assert.equal(r.limitHit, 'timeout');
  assert.equal(r.evidence, 'timer');
  assert.equal(r.reason, 'wall-clock limit 30s reached: the sandbox was terminated');
});

test('rlimit fallback: a failure at the per-process limit is blamed on it, marked as inferred', () => {
  const atLimit = { ...ok, code: 1, rusage: { userMs: 1, sysMs: 1, maxRssKb: 250 * 1024 } };
  const r = reportLimits(rlimitPlan, atLimit, null);
  assert.equal(r.limitHit, 'memory');
  assert.equal(r.evidence, 'inferred');
  assert.equal(r.peakMemoryScope, 'largest-process');
  assert.deepEqual(r.usage, { peakMemoryBytes: 250 * MiB, cpuMs: 2 });
  // Far below the limit, or successful: not blamed.
  assert.equal(reportLimits(rlimitPlan, { ...atLimit, rusage: { ...atLimit.rusage, maxRssKb: 10 * 1024 } }, null).limitHit, null);
  assert.equal(reportLimits(rlimitPlan, { ...atLimit, code: 0 }, null).limitHit, null);
});

test('no usage at all: nulls, not zeros', () => {
  const r = reportLimits(rlimitPlan, { code: 0, signal: null, timedOut: false, rusage: null }, null);
  assert.deepEqual(r.usage, { peakMemoryBytes: null, cpuMs: null });
  assert.equal(r.peakMemoryScope, null);
});

test('counter files: key/value lines, non-numeric values ignored', () => {
  const m = parseKeyedCounters('oom_kill_disable 0\nunder_oom 0\noom_kill 2\nmax 17\nbogus x\n');
  assert.equal(m.get('oom_kill'), 2);
  assert.equal(m.get('max'), 17);
  assert.equal(m.has('bogus'), false);
  assert.equal(parseKeyedCounters(null).size, 0);
});
