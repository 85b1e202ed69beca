// Not a test: measures what a per-command cgroup costs on this host (create with limits written,
// move a process in, read usage, remove). Run as a user with a writable cgroup (root here):
//   node dist/test/linux/limits/measure-cost.js [rounds]
import { spawn } from 'node:child_process';
import { totalmem } from 'node:os';
import { SandboxCgroup, sweepStaleCgroups } from '../../../src/linux/limits/cgroup.js';
import { detectCgroupFacts } from '../../../src/linux/limits/detect.js';
import { planLimits } from '../../../src/linux/limits/plan.js';
import { DEFAULT_LIMITS } from '../../../src/policy/defaults.js';

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

function p90(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length * 0.9)]!;
}

async function main(): Promise<void> {
  const rounds = Number(process.argv[2] ?? 200);
  let t = performance.now();
  const facts = detectCgroupFacts({ fresh: true });
  const detectMs = performance.now() - t;
  const variants = {
    'defaults (memory + pids)': planLimits({ timeoutMs: null, memoryBytes: Math.floor(totalmem() * DEFAULT_LIMITS.memoryFraction), pids: DEFAULT_LIMITS.pids, cpu: null }, facts),
    'memory + pids + cpu': planLimits({ timeoutMs: null, memoryBytes: 1 << 30, pids: 512, cpu: 1 }, facts),
  };
  t = performance.now();
  for (let i = 0; i < 1000; i++) planLimits({ timeoutMs: null, memoryBytes: 1 << 30, pids: 512, cpu: 1 }, facts);
  const planMs = (performance.now() - t) / 1000;
  t = performance.now();
  sweepStaleCgroups(variants['defaults (memory + pids)']);
  const sweepMs = performance.now() - t;
  console.log(`detect facts (once per process): ${detectMs.toFixed(3)} ms; sweep (first use): ${sweepMs.toFixed(3)} ms; plan: ${planMs.toFixed(3)} ms`);
  console.log('| plan | hierarchies | create | move pid | read usage | remove | total (median) | total (p90) |');
  console.log('|---|---|---|---|---|---|---|---|');
  for (const [label, plan] of Object.entries(variants)) {
    if (plan.cgroups.length === 0) {
      console.log(`| ${label} | none: no writable cgroup for this user | | | | | | |`);
      continue;
    }
    const phases = { create: [] as number[], move: [] as number[], read: [] as number[], remove: [] as number[], total: [] as number[] };
    for (let i = 0; i < rounds; i++) {
      const child = spawn('sh', ['-c', 'read x'], { stdio: ['pipe', 'ignore', 'ignore'] });
      const exited = new Promise((r) => child.on('exit', r));
      await new Promise((r) => child.on('spawn', r));
      const t0 = performance.now();
      const cg = SandboxCgroup.create(plan, { sweep: false })!;
      const t1 = performance.now();
      cg.addProcess(child.pid!);
      const t2 = performance.now();
      child.stdin!.end('\n');
      await exited;
      const t3 = performance.now();
      cg.readUsage();
      const t4 = performance.now();
      await cg.remove();
      const t5 = performance.now();
      phases.create.push(t1 - t0);
      phases.move.push(t2 - t1);
      phases.read.push(t4 - t3);
      phases.remove.push(t5 - t4);
      phases.total.push(t1 - t0 + (t2 - t1) + (t4 - t3) + (t5 - t4));
    }
    const f = (xs: number[]) => `${median(xs).toFixed(3)} ms`;
    console.log(`| ${label} | ${plan.cgroups.map((c) => `v${c.version} ${c.controllers.join('+')}`).join(', ')} | ${f(phases.create)} | ${f(phases.move)} | ${f(phases.read)} | ${f(phases.remove)} | ${f(phases.total)} | ${p90(phases.total).toFixed(3)} ms |`);
  }
}

main().catch((e: Error) => {
  console.error(e.message);
  process.exit(1);
});
