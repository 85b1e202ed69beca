// What each Linux layer costs per command, as ratios to the Linux core alone (bubblewrap with
// cordon's mount plan, exec'ing the command directly): the launcher, Landlock + seccomp, and
// violation reporting (seccomp user notification of denied calls and write-intent calls).
import { spawn } from 'node:child_process';
import { mkdtempSync, openSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import { formatMs } from './report.js';

type Runner = (argv: string[]) => Promise<void>;

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

export async function runLayersBench(runs = 30): Promise<string> {
  const { createSandbox } = await import('../src/sandbox.js');
  const ws = mkdtempSync(join(process.env.CORDON_BENCH_WORKSPACE_ROOT ?? tmpdir(), 'cordon-layers-'));
  try {
    const open = (hooks: object, reportWrites = true) => createSandbox({ userConfig: null, cwd: ws, policy: { workspace: ws }, unsafeTestHooks: hooks as never, reportWrites });
    const variants: [string, Awaited<ReturnType<typeof open>>][] = [
      ['launcher only', await open({ landlock: false, seccomp: 'off' })],
      ['+ Landlock + seccomp', await open({ seccomp: 'errno' })],
      ['+ reporting (default)', await open({})],
    ];
    const nullFd = openSync('/dev/null', 'r');
    const bwrapArgs = variants[0]![1].bwrapArgs;
    const core: Runner = (argv) =>
      new Promise((resolve, reject) => {
        const c = spawn('bwrap', [...bwrapArgs, '--chdir', ws, '--', ...argv], { stdio: ['ignore', 'ignore', 'pipe', 'ignore', nullFd] });
        c.on('error', reject);
        c.on('close', (code) => (code === 0 ? resolve() : reject(new Error(`bwrap exited ${code}`))));
      });
    const viaSandbox = (sb: Awaited<ReturnType<typeof open>>): Runner => async (argv) => {
      const r = await sb.spawn(argv, { stdio: ['ignore', 'ignore', 'ignore'] }).result;
      if (r.exitCode !== 0) throw new Error(`exit ${r.exitCode}`);
    };
    const columns: [string, Runner][] = [['core alone (bwrap + plan)', core], ...variants.map(([n, sb]) => [n, viaSandbox(sb)] as [string, Runner])];
    const workloads: [string, string[], number][] = [
      ['`true`', ['true'], runs],
      ['1000 files', ['sh', '-c', 'i=0; while [ $i -lt 1000 ]; do echo x > f$i; i=$((i+1)); done; rm -f f*'], Math.max(5, Math.floor(runs / 3))],
    ];
    const lines = ['| workload | ' + columns.map(([n]) => n).join(' | ') + ' |', '|---|' + columns.map(() => '---:').join('|') + '|'];
    for (const [label, argv, n] of workloads) {
      const samples = columns.map(() => [] as number[]);
      for (let i = 0; i < n + 2; i++) {
        for (let k = 0; k < columns.length; k++) {
          const j = (k + i) % columns.length; // rotate the start so drift hits every column alike
          const t = performance.now();
          await columns[j]![1](argv);
          if (i >= 2) samples[j]!.push(performance.now() - t);
        }
      }
      const base = median(samples[0]!);
      lines.push(`| ${label} | ` + samples.map((s, j) => (j === 0 ? formatMs(median(s)) : `${formatMs(median(s))} (${(median(s) / base).toFixed(2)}×)`)).join(' | ') + ' |');
    }
    for (const [, sb] of variants) await sb.close();
    return ['Per command, from a running Node process, median; ratios to the core alone.', '', ...lines].join('\n');
  } finally {
    rmSync(ws, { recursive: true, force: true });
  }
}
