// `npm run bench`: one markdown report measured in one run — cordon against bare exec, raw bwrap,
// srt and Codex on the workloads of issue 5, medians and ratios, peak memory, and the goals.
// Columns are interleaved round-robin (rotating the start) so drift hits every column alike.
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { availableParallelism, cpus, release, tmpdir, totalmem, userInfo } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Column, ColumnRunner } from './columns.js';
import { REPO_ROOT, findOnPath, writableStateDir } from './layout.js';
import { GNU_TIME, measureMemory, type MemoryFigure } from './memory.js';
import { ensurePeersInstalled, peerVersions } from './peers.js';
import { firstErrorLine, type CommandResult } from './process.js';
import { COLUMNS } from './registry.js';
import {
  cellMedian,
  formatMs,
  renderGoal,
  renderSimpleTable,
  renderTimingTable,
  type Cell,
  type GoalCheck,
  type Row,
} from './report.js';
import { WORKLOADS, createWorkspace, type Step, type Workload } from './workloads.js';

interface Options {
  runsScale: number;
  columns: Set<string> | null;
  workloads: Set<string> | null;
  install: boolean;
  memory: boolean;
  network: boolean;
  /** Where the per-column workspaces are created (default: the OS temp dir). */
  workspaceRoot: string;
}

const USAGE = `usage: node dist/bench/run.js [--quick] [--runs-scale=X] [--columns=a,b] [--workloads=a,b] [--workspace-root=DIR] [--no-install] [--no-memory] [--no-network]
  columns:   ${COLUMNS.map((column) => column.id).join(', ')}
  workloads: ${WORKLOADS.map((workload) => workload.id).join(', ')}`;

function parseOptions(argv: readonly string[]): Options {
  const options: Options = { runsScale: 1, columns: null, workloads: null, install: true, memory: true, network: true, workspaceRoot: tmpdir() };
  const idList = (flag: string, value: string, known: readonly string[]): Set<string> => {
    const ids = value.split(',').filter((id) => id !== '');
    const unknown = ids.filter((id) => !known.includes(id));
    if (ids.length === 0 || unknown.length > 0) {
      throw new Error(`${flag}: unknown ${unknown.join(', ') || '(empty list)'}; choose from ${known.join(', ')}`);
    }
    return new Set(ids);
  };
  for (const argument of argv) {
    const [flag, value] = argument.includes('=') ? [argument.slice(0, argument.indexOf('=')), argument.slice(argument.indexOf('=') + 1)] : [argument, ''];
    if (flag === '--quick') options.runsScale = 1 / 3;
    else if (flag === '--runs-scale') {
      const scale = Number(value);
      if (!(scale > 0 && scale <= 20)) throw new Error(`--runs-scale: expected a number in (0, 20], got ${JSON.stringify(value)}`);
      options.runsScale = scale;
    } else if (flag === '--columns') options.columns = idList(flag, value, COLUMNS.map((column) => column.id));
    else if (flag === '--workloads') options.workloads = idList(flag, value, WORKLOADS.map((workload) => workload.id));
    else if (flag === '--workspace-root') {
      if (!value || !existsSync(value) || !statSync(value).isDirectory()) throw new Error(`--workspace-root: ${JSON.stringify(value)} is not an existing directory`);
      options.workspaceRoot = resolve(value);
    } else if (flag === '--no-install') options.install = false;
    else if (flag === '--no-memory') options.memory = false;
    else if (flag === '--no-network') options.network = false;
    else if (flag === '--help' || flag === '-h') {
      process.stdout.write(USAGE + '\n');
      process.exit(0);
    } else throw new Error(`unknown option ${JSON.stringify(argument)}; see --help`);
  }
  return options;
}

function commandOutput(file: string, args: string[]): string {
  try {
    return execFileSync(file, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], timeout: 10_000 }).trim().split('\n')[0]!;
  } catch {
    return 'not available';
  }
}

function machineFacts(workspaceRoot: string): string[] {
  const cpu = cpus()[0]?.model ?? 'unknown CPU';
  const versions = peerVersions();
  const user = userInfo();
  const cordonCommit = commandOutput('git', ['-C', REPO_ROOT, 'log', '-1', '--format=%h %cd', '--date=short']);
  return [
    `- kernel ${release()} (${process.arch}), ${availableParallelism()} cores (${cpu}), ${(totalmem() / 2 ** 30).toFixed(1)} GiB RAM`,
    `- node ${process.version}, ${commandOutput('/usr/bin/bwrap', ['--version'])}, ${commandOutput('git', ['--version'])}, ${commandOutput('python3', ['--version'])}`,
    `- peers: @anthropic-ai/sandbox-runtime ${versions.srt ?? 'not installed'}, @openai/codex ${versions.codex ?? 'not installed'}`,
    `- cordon at ${cordonCommit}; run as ${user.username} (uid ${user.uid}); ${new Date().toISOString()}`,
    `- workspaces in ${workspaceRoot} (${commandOutput('stat', ['-f', '-c', '%T', workspaceRoot])})`,
  ];
}

interface ActiveColumn {
  column: Column;
  runner: ColumnRunner;
  workspace: string;
  samples: number[];
  failure: string | null;
  setupMs: number;
}

/** Check one unit's results: the first problem as a one-line note, or null. */
function checkUnit(steps: readonly Step[], results: readonly CommandResult[]): string | null {
  for (let index = 0; index < results.length; index++) {
    const step = steps[index]!;
    const result = results[index]!;
    const command = `\`${step.argv.join(' ').slice(0, 60)}\``;
    const label = steps.length > 1 ? `step ${index + 1} ${command}` : command;
    if (result.exitCode !== 0) return `${label}: ${firstErrorLine(result)}`;
    const problem = step.expect?.(result);
    if (problem) return `${label}: ${problem}`;
  }
  return null;
}

async function runUnit(active: ActiveColumn, workload: Workload, token: string): Promise<{ ms: number; error: string | null }> {
  const steps = workload.steps(token, active.workspace);
  const results: CommandResult[] = [];
  const start = process.hrtime.bigint();
  for (const step of steps) {
    const result = await active.runner.run(step.argv);
    results.push(result);
    if (result.exitCode !== 0) break;
  }
  const ms = Number(process.hrtime.bigint() - start) / 1e6;
  const error = checkUnit(steps, results) ?? workload.after?.(active.workspace, token) ?? null;
  return { ms, error };
}

function scaledRuns(workload: Workload, scale: number): number {
  return Math.max(workload.id === 'agent' ? 1 : 3, Math.round(workload.runs * scale));
}

async function benchWorkload(
  workload: Workload,
  columns: readonly Column[],
  unavailable: Map<string, string>,
  root: string,
  runs: number,
  setupNotes: string[],
): Promise<Row> {
  const cells = new Map<string, Cell>();
  const missingTools = workload.requires.filter((tool) => findOnPath(tool) === null);
  if (missingTools.length > 0) {
    for (const column of columns) cells.set(column.id, { kind: 'skipped', note: `${missingTools.join(', ')} not on PATH` });
    return { title: workload.title, runs, cells };
  }
  const active: ActiveColumn[] = [];
  for (const column of columns) {
    const reason = unavailable.get(column.id);
    if (reason) {
      cells.set(column.id, { kind: 'skipped', note: `${column.title}: ${reason}` });
      continue;
    }
    const workspace = join(root, workload.id, column.id);
    createWorkspace(workspace);
    const start = process.hrtime.bigint();
    try {
      const runner = await column.open(workspace);
      const setupMs = Number(process.hrtime.bigint() - start) / 1e6;
      active.push({ column, runner, workspace, samples: [], failure: null, setupMs });
    } catch (error) {
      cells.set(column.id, { kind: 'failed', note: `setup failed: ${error instanceof Error ? error.message.split('\n')[0] : String(error)}` });
    }
  }
  try {
    const rounds = workload.warmup + runs;
    for (let round = 0; round < rounds; round++) {
      const warm = round < workload.warmup;
      const token = warm ? `w${round}` : `r${round - workload.warmup}`;
      // Rotate the starting column each round: no column always runs first or after the slowest.
      for (let offset = 0; offset < active.length; offset++) {
        const entry = active[(round + offset) % active.length]!;
        if (entry.failure !== null) continue;
        let outcome: { ms: number; error: string | null };
        try {
          outcome = await runUnit(entry, workload, token);
        } catch (error) {
          outcome = { ms: Number.NaN, error: `threw: ${error instanceof Error ? error.message.split('\n')[0] : String(error)}` };
        }
        if (outcome.error !== null) entry.failure = outcome.error;
        else if (!warm) entry.samples.push(outcome.ms);
      }
      for (const entry of active) workload.cleanup?.(entry.workspace, token);
    }
  } finally {
    for (const entry of active) {
      try {
        await entry.runner.close();
      } catch (error) {
        entry.failure ??= `close failed: ${error instanceof Error ? error.message.split('\n')[0] : String(error)}`;
      }
    }
  }
  for (const entry of active) {
    cells.set(entry.column.id, entry.failure !== null ? { kind: 'failed', note: entry.failure } : { kind: 'measured', samples: entry.samples });
    if (entry.setupMs >= 1 && workload.id === 'true') setupNotes.push(`${entry.column.title} ${formatMs(entry.setupMs)}`);
  }
  return { title: workload.title, runs, cells };
}

function goalChecks(rows: Map<string, Row>): GoalCheck[] {
  const median = (workloadId: string, columnId: string): number => cellMedian(rows.get(workloadId)?.cells.get(columnId));
  const missing = (...pairs: [string, string][]): string | undefined => {
    const absent = pairs.filter(([workload, column]) => !Number.isFinite(median(workload, column)));
    return absent.length === 0 ? undefined : `no measurement for ${absent.map(([workload, column]) => `${column} on ${workload}`).join(', ')}`;
  };
  const library = median('true', 'cordon-lib');
  const bwrap = median('true', 'bwrap');
  const session = median('true', 'cordon-session');
  const bare = median('true', 'bare');
  const cli = median('true', 'cordon-cli');
  const nodeStart = median('node', 'bare');
  const check = (goal: GoalCheck, absent: string | undefined): GoalCheck => (absent ? { ...goal, measured: null, missing: absent } : goal);
  return [
    check(
      { name: 'library per-command ≤ 1.3 × a Node spawn of raw bwrap (`true`)', measured: library / bwrap, limit: 1.3, unit: '×', detail: `${formatMs(library)} vs ${formatMs(bwrap)}` },
      missing(['true', 'cordon-lib'], ['true', 'bwrap']),
    ),
    check(
      { name: 'session per-command ≤ 2 × a plain Node spawn (`true`)', measured: session / bare, limit: 2, unit: '×', detail: `${formatMs(session)} vs ${formatMs(bare)}` },
      missing(['true', 'cordon-session'], ['true', 'bare']),
    ),
    check(
      { name: '`cordon run -- true` ≤ `node -e 0` + 15 ms', measured: cli, limit: nodeStart + 15, unit: ' ms', detail: `\`node -e 0\` spawned from Node: ${formatMs(nodeStart)}` },
      missing(['true', 'cordon-cli'], ['node', 'bare']),
    ),
  ];
}

function memorySection(figures: readonly MemoryFigure[], columns: readonly Column[]): string {
  const baseline = new Map(figures.map((figure) => [figure.columnId, figure.peakKib]));
  const title = (id: string): string => (id === 'node-host' ? 'Node host (reference)' : columns.find((column) => column.id === id)?.title ?? id);
  const mib = (kib: number): string => `${(kib / 1024).toFixed(1)} MiB`;
  const rows = figures.map((figure) => {
    if (figure.peakKib === null) return [title(figure.columnId), 'fail', figure.note ?? ''];
    const base = figure.baselineId ? baseline.get(figure.baselineId) : null;
    const share = base
      ? `Node host with the library: +${mib(figure.peakKib - base)} over the plain host`
      : figure.columnId === 'node-host'
        ? 'Node host spawning `true` (baseline for library columns)'
        : 'largest process of the wrapper running `true`';
    return [title(figure.columnId), mib(figure.peakKib), share];
  });
  return renderSimpleTable(['wrapper', 'peak RSS', 'what was measured'], rows, [1]);
}

async function layersSection(options: Options): Promise<string> {
  try {
    const { runLayersBench } = await import('./layers.js');
    process.env.CORDON_BENCH_WORKSPACE_ROOT = options.workspaceRoot;
    return await runLayersBench(Math.max(10, Math.round(30 * options.runsScale)));
  } catch (error) {
    return `_layer costs not measured: ${error instanceof Error ? error.message : String(error)}_`;
  }
}

async function networkSection(): Promise<string> {
  const modulePath = fileURLToPath(new URL('./network.js', import.meta.url));
  if (!existsSync(modulePath)) return '_bench/network.ts is not there yet; no network figures._';
  try {
    const module = (await import(modulePath)) as { runNetworkBench?: () => Promise<string> };
    if (typeof module.runNetworkBench !== 'function') return '_bench/network.ts does not export runNetworkBench() yet._';
    return await module.runNetworkBench();
  } catch (error) {
    return `_network bench failed: ${error instanceof Error ? error.message.split('\n')[0] : String(error)}_`;
  }
}

async function main(): Promise<void> {
  const options = parseOptions(process.argv.slice(2));
  if (findOnPath('git') === null) throw new Error('git is not on PATH; the bench needs it to create its workspaces (apt-get install git)');
  const notes: string[] = [];
  const installNote = await ensurePeersInstalled(options.install);
  if (installNote) notes.push(installNote);

  const columns = COLUMNS.filter((column) => options.columns === null || options.columns.has(column.id));
  const workloads = WORKLOADS.filter((workload) => options.workloads === null || options.workloads.has(workload.id));
  const unavailable = new Map<string, string>();
  for (const column of columns) {
    let reason: string | null;
    try {
      reason = await column.unavailable();
    } catch (error) {
      reason = error instanceof Error ? error.message.split('\n')[0]! : String(error);
    }
    if (reason) unavailable.set(column.id, reason);
  }

  const root = mkdtempSync(join(options.workspaceRoot, 'cordon-bench-'));
  const rows = new Map<string, Row>();
  const setupNotes: string[] = [];
  const started = Date.now();
  let memory: MemoryFigure[] = [];
  try {
    for (const workload of workloads) {
      const runs = scaledRuns(workload, options.runsScale);
      process.stderr.write(`bench: ${workload.id} (${runs} runs × ${columns.length - unavailable.size} columns) … `);
      const workloadStart = Date.now();
      rows.set(workload.id, await benchWorkload(workload, columns, unavailable, root, runs, setupNotes));
      process.stderr.write(`${((Date.now() - workloadStart) / 1000).toFixed(1)} s\n`);
    }
    if (options.memory && existsSync(GNU_TIME)) {
      process.stderr.write('bench: peak memory … ');
      const usable = columns.filter((column) => !unavailable.has(column.id));
      memory = await measureMemory(usable, root, (id) => {
        const workspace = join(root, 'memory', id);
        if (!existsSync(workspace)) createWorkspace(workspace);
        return workspace;
      });
      process.stderr.write('done\n');
    } else if (options.memory) {
      notes.push(`peak memory not measured: ${GNU_TIME} missing (apt-get install time)`);
    }
  } finally {
    rmSync(root, { recursive: true, force: true });
  }

  const rowList = [...rows.values()];
  const { table, footnotes } = renderTimingTable(columns, rowList, 'bare');
  const out: string[] = [];
  out.push('# cordon bench', '', ...machineFacts(options.workspaceRoot), '');
  out.push(
    `Median wall time per workload unit (one command, or the whole 50-command sequence), spawned from one Node process and waited for; in parentheses the ratio to bare exec. Columns interleaved round-robin; total ${((Date.now() - started) / 1000).toFixed(0)} s.`,
    '',
    table,
    '',
  );
  if (footnotes.length > 0) out.push(...footnotes.map((note, index) => `[${index + 1}] ${note}`), '');
  if (setupNotes.length > 0) out.push(`One-time setup per workspace (untimed above): ${setupNotes.join(', ')}.`, '');
  out.push('## Goals (issue 5)', '', ...goalChecks(rows).map(renderGoal), '');
  if (memory.length > 0) {
    out.push('## Peak memory', '', `Max RSS by \`${GNU_TIME} -f %M\` (largest single process of the tree; median of 3): CLIs and raw bwrap running \`true\`; libraries as a Node host running \`true\` 20 times.`, '', memorySection(memory, columns), '');
  }
  out.push('## What each layer costs', '', await layersSection(options), '');
  if (options.network) out.push('## Network', '', await networkSection(), '');
  if (notes.length > 0) out.push('## Notes', '', ...notes.map((note) => `- ${note}`), '');
  const report = out.join('\n');
  process.stdout.write(report);

  const resultsDir = writableStateDir('results');
  const stamp = new Date().toISOString().replaceAll(':', '-');
  writeFileSync(join(resultsDir, `bench-${stamp}.md`), report);
  writeFileSync(
    join(resultsDir, `bench-${stamp}.json`),
    JSON.stringify({ rows: rowList.map((row) => ({ ...row, cells: Object.fromEntries(row.cells) })), memory, unavailable: Object.fromEntries(unavailable) }, null, 1),
  );
  process.stderr.write(`bench: saved ${join(resultsDir, `bench-${stamp}.md`)} (and .json with every sample)\n`);
}

try {
  await main();
} catch (error) {
  process.stderr.write(`bench: ${error instanceof Error ? error.message : String(error)}\n`);
  process.exitCode = 1;
}
// Peers' libraries may keep handles open after reset(); the report is written, so leave now.
process.exit();
