// The cgroup applier on the real kernel (needs a writable cgroup: root here): limits land in the
// kernel, processes join and are killed, nothing is left behind, stale cgroups of a SIGKILLed
// cordon are swept, a CPU quota throttles, and a sandbox cannot raise its own limits.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { SandboxCgroup, PARENT_NAME, sweepStaleCgroups } from '../../../src/linux/limits/cgroup.js';
import { detectCgroupFacts } from '../../../src/linux/limits/detect.js';
import { planLimits, type LimitsPlan } from '../../../src/linux/limits/plan.js';
import type { ResolvedLimits } from '../../../src/policy/types.js';
import { ROOT, sleep } from '../../helpers/env.js';
import { PYTHON, runLimited } from './fixtures/sandbox.js';
import { BUSY_LOOP } from './fixtures/workloads.js';

const NONE: ResolvedLimits = { timeoutMs: null, memoryBytes: null, pids: null, cpu: null };
const facts = detectCgroupFacts({ fresh: true });
const plan = planLimits({ ...NONE, memoryBytes: 512 << 20, pids: 64, cpu: 1 }, facts);
const noCgroup = plan.cgroups.length === 0 ? 'no writable cgroup for this user (run as root, or with systemd user delegation)' : false;
const pidsDir = (cg: SandboxCgroup) => cg.dirs.find((d) => d.controllers.includes('pids'))?.path;

function alive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return !/^\S+ \(.*\) Z/.test(stat);
  } catch {
    return false;
  }
}

function sleeper(seconds = 60) {
  const child = spawn('sleep', [String(seconds)], { stdio: 'ignore' });
  return child;
}

/** Sandbox cgroups this test process still owns, in every base it could use. */
function ours(): string[] {
  const bases = new Set([...plan.cgroups.map((c) => c.base), ...(facts.v2?.base ? [facts.v2.base] : [])]);
  const out: string[] = [];
  for (const b of bases) {
    try {
      for (const e of readdirSync(join(b, PARENT_NAME))) if (e.startsWith(`cordon-${process.pid}-`)) out.push(join(b, PARENT_NAME, e));
    } catch {
      // no parent: nothing of ours
    }
  }
  return out;
}

after(() => {
  assert.deepEqual(ours(), [], 'this test process left cgroups behind');
});

test('create writes the planned limits into the kernel; remove kills the members and leaves nothing', { skip: noCgroup }, async () => {
  const cg = SandboxCgroup.create(plan)!;
  const child = sleeper();
  try {
    for (const c of plan.cgroups) {
      const dir = cg.dirs.find((d) => d.path.startsWith(`${c.base}/${PARENT_NAME}/`))!;
      assert.ok(dir, `no cgroup under ${c.base}`);
      for (const w of c.writes) {
        const text = readFileSync(join(dir.path, w.file), 'utf8').trim();
        if (w.optional && text === '') continue;
        // cpu.max reads back as "quota period"; everything else as written.
        assert.equal(text, w.value, `${w.file} in ${dir.path}`);
      }
    }
    cg.addProcess(child.pid!);
    assert.deepEqual(cg.processes(), [child.pid]);
    for (const d of cg.dirs) assert.match(readFileSync(`/proc/${child.pid}/cgroup`, 'utf8'), new RegExp(`${cg.name}`), d.path);
    assert.ok(alive(child.pid!));
  } finally {
    await cg.remove();
  }
  assert.equal(alive(child.pid!), false, 'a member survived remove()');
  for (const d of cg.dirs) assert.equal(existsSync(d.path), false, `${d.path} still exists`);
});

test('usage is read from the kernel: a process that allocates shows up in the peak', { skip: noCgroup }, async () => {
  const run = await runLimited(plan, { argv: [PYTHON, '-c', 'b = b"x" * (64 << 20); print(len(b))'] });
  assert.equal(run.code, 0, run.stderr);
  if (plan.memory.mechanism.startsWith('cgroup')) assert.ok((run.usage?.peakMemoryBytes ?? 0) >= 64 << 20, `peak ${run.usage?.peakMemoryBytes}`);
  assert.ok((run.report.usage.cpuMs ?? -1) >= 0);
  assert.equal(run.report.limitHit, null);
  assert.deepEqual(run.leftover, []);
});

test('a CPU quota throttles the sandbox; the same loop with a quota of every core is never throttled', { skip: noCgroup || (plan.cpu.mechanism === 'none' && 'no writable cpu cgroup'), timeout: 60_000 }, async () => {
  const busy = (cpu: number) => runLimited(planLimits({ ...NONE, cpu }, facts), { argv: [PYTHON, '-c', BUSY_LOOP, '1'] });
  const wide = await busy(2);
  assert.equal(wide.code, 0, wide.stderr);
  assert.equal(wide.usage?.throttledPeriods, 0, 'one busy thread cannot exceed a two-core quota');
  const narrow = await busy(0.1);
  assert.equal(narrow.code, 0, narrow.stderr);
  assert.ok((narrow.usage?.throttledPeriods ?? 0) > 0, 'a tenth of a core was not enforced');
  assert.match(narrow.report.notes.join('\n'), /CPU quota held the sandbox back/);
});

test('the sandbox cannot raise its own limit: cgroupfs is read-only in cordon\'s mount view (control: writable view)', { skip: noCgroup }, async () => {
  const attempt = (root: 'ro' | 'rw') => {
    let target = '';
    return runLimited(plan, {
      root,
      argv: (cg) => {
        target = `${pidsDir(cg!)}/pids.max`;
        return ['sh', '-c', `echo 100000 > ${target} && cat ${target}`];
      },
    }).then((run) => ({ run, target }));
  };
  const control = await attempt('rw');
  assert.equal(control.run.code, 0, 'the probe cannot write pids.max even with a writable view, so it proves nothing');
  assert.equal(control.run.stdout.trim(), '100000');
  const held = await attempt('ro');
  assert.notEqual(held.run.code, 0);
  assert.match(held.run.stderr, /Read-only file system/);
  assert.deepEqual(held.run.leftover, []);
});

test('cgroups of a SIGKILLed cordon are swept (and their processes killed); a live owner\'s are not', { skip: noCgroup, timeout: 60_000 }, async () => {
  const driver = join(ROOT, 'dist', 'test', 'linux', 'limits', 'fixtures', 'driver.js');
  const owner = spawn(process.execPath, [driver, JSON.stringify({ scenario: 'hold', limits: { ...NONE, memoryBytes: 512 << 20, pids: 64 } })], { stdio: ['ignore', 'pipe', 'inherit'] });
  const exited = new Promise((r) => owner.on('exit', r));
  let text = '';
  const held = await new Promise<{ name: string; dirs: string[]; sleeperPid: number }>((resolveHeld, reject) => {
    const timer = setTimeout(() => reject(new Error('the owner never reported its cgroup')), 20_000);
    owner.stdout!.setEncoding('utf8').on('data', (d: string) => {
      text += d;
      if (text.includes('\n')) {
        clearTimeout(timer);
        resolveHeld(JSON.parse(text.split('\n')[0]!));
      }
    });
  });
  try {
    assert.ok(held.dirs.every((d) => existsSync(d)));
    assert.deepEqual(sweepStaleCgroups(plan).filter((d) => held.dirs.includes(d)), [], 'swept while its owner was alive');
    assert.ok(alive(held.sleeperPid));

    owner.kill('SIGKILL');
    await exited;
    assert.ok(alive(held.sleeperPid), 'the orphan should still be running in the stale cgroup');
    const swept = sweepStaleCgroups(plan);
    assert.deepEqual(held.dirs.filter((d) => !swept.includes(d)), [], `not swept: ${held.dirs.filter((d) => !swept.includes(d))}`);
    for (const d of held.dirs) assert.equal(existsSync(d), false);
    for (let i = 0; i < 100 && alive(held.sleeperPid); i++) await sleep(10);
    assert.equal(alive(held.sleeperPid), false, 'the stale cgroup\'s process survived the sweep');
  } finally {
    owner.kill('SIGKILL');
    try {
      process.kill(held.sleeperPid, 'SIGKILL');
    } catch {
      // gone
    }
  }
});

test('a stale cgroup that carries our own pid (a dead cordon had it before us) is swept too', { skip: noCgroup }, () => {
  const base = plan.cgroups[0]!.base;
  mkdirSync(join(base, PARENT_NAME), { recursive: true });
  const stale = join(base, PARENT_NAME, `cordon-${process.pid}-999999`);
  mkdirSync(stale);
  assert.ok(sweepStaleCgroups(plan).includes(stale));
  assert.equal(existsSync(stale), false);
});

test('cgroup v2 mechanics (create, join, cgroup.kill, cpu.stat, remove) on this host\'s v2 hierarchy', { skip: !facts.v2?.base && 'no writable cgroup v2 hierarchy' }, async () => {
  // A v2 cgroup with no controllers: the hybrid hierarchy offers none, but membership, cpu.stat
  // and cgroup.kill work the same as with them.
  const v2Plan: Pick<LimitsPlan, 'cgroups'> = { cgroups: [{ version: 2, base: facts.v2!.base!, controllers: [], enableAtBase: [], writes: [] }] };
  const cg = SandboxCgroup.create(v2Plan)!;
  const child = spawn(PYTHON, ['-c', BUSY_LOOP, '30'], { stdio: 'ignore' });
  try {
    cg.addProcess(child.pid!);
    assert.deepEqual(cg.processes(), [child.pid]);
    for (let i = 0; i < 200 && !(cg.readUsage().cpuMs! > 0); i++) await sleep(10);
    assert.ok(cg.readUsage().cpuMs! > 0, 'cpu.stat did not count the busy member');
  } finally {
    await cg.remove();
  }
  assert.equal(existsSync(cg.dirs[0]!.path), false);
  for (let i = 0; i < 100 && alive(child.pid!); i++) await sleep(10);
  assert.equal(alive(child.pid!), false);
});

test('a plan without cgroups creates nothing', () => {
  assert.equal(SandboxCgroup.create({ cgroups: [] }), null);
});
