// What a column of the table is, and the two reference columns every sandbox is compared with:
// a bare spawn and a raw bubblewrap spawn of a minimal equivalent policy.
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { firstErrorLine, runProcess, type CommandResult } from './process.js';

/** A command runner bound to one workspace (one workload's copy for this column). */
export interface ColumnRunner {
  run(argv: readonly string[]): Promise<CommandResult>;
  close(): Promise<void>;
}

export interface Column {
  id: string;
  /** Table header. */
  title: string;
  /** Why this column cannot run on this machine, or null when it can. Called once, untimed. */
  unavailable(): Promise<string | null>;
  /** Set up for one workspace (sandbox creation, proxy start, config files): untimed. */
  open(workspace: string): Promise<ColumnRunner>;
  /** The argv whose max RSS stands for this wrapper's memory, when it is a whole process. */
  memoryProbe?(workspace: string): Promise<MemoryProbe>;
}

/**
 * How to measure a column's peak memory: a process to run under `/usr/bin/time -f %M`.
 * Library columns point at the memory driver, which loads the library in a Node host.
 */
export interface MemoryProbe {
  file: string;
  args: string[];
  cwd: string;
  env?: NodeJS.ProcessEnv;
  argv0?: string;
  /** Subtract this probe's figure to show the wrapper's own share (library columns: a bare Node host). */
  baselineId?: string;
  /** Untimed cleanup after each sample (what the wrapper leaves behind). */
  cleanup?: () => void;
}

export const BWRAP = '/usr/bin/bwrap';

/**
 * The availability check of a column: open it on a throwaway workspace and run `true`.
 * Returns why that failed (one line), or null when the column works.
 */
export async function runsTrueInScratch(open: (workspace: string) => Promise<ColumnRunner>): Promise<string | null> {
  const scratch = mkdtempSync(join(tmpdir(), 'cordon-bench-probe-'));
  try {
    const runner = await open(scratch);
    try {
      const result = await runner.run(['true']);
      return result.exitCode === 0 ? null : `\`true\` failed (${firstErrorLine(result)})`;
    } finally {
      await runner.close();
    }
  } catch (error) {
    return (error instanceof Error ? error.message : String(error)).split('\n')[0]!.slice(0, 200);
  } finally {
    rmSync(scratch, { recursive: true, force: true });
  }
}

export const bareColumn: Column = {
  id: 'bare',
  title: 'bare exec',
  async unavailable() {
    return null;
  },
  async open(workspace) {
    return {
      run: (argv) => runProcess(argv[0]!, argv.slice(1), { cwd: workspace }),
      async close() {},
    };
  },
  async memoryProbe(workspace) {
    return { file: 'true', args: [], cwd: workspace };
  },
};

/**
 * The minimal policy that still gives the guarantees every sandbox here claims: host read-only,
 * workspace writable, private /dev, /proc and /tmp, no network, own user/pid/ipc/uts namespaces,
 * no controlling terminal, dies with its parent. `/tmp` comes before the workspace bind because
 * the workspace usually lives under /tmp and would otherwise be hidden by the tmpfs.
 */
export function rawBwrapArgs(workspace: string, argv: readonly string[]): string[] {
  return [
    '--ro-bind', '/', '/',
    '--dev', '/dev',
    '--proc', '/proc',
    '--tmpfs', '/tmp',
    '--bind', workspace, workspace,
    '--unshare-user', '--unshare-pid', '--unshare-ipc', '--unshare-uts', '--unshare-net',
    '--die-with-parent', '--new-session',
    '--chdir', workspace,
    '--', ...argv,
  ];
}

export const rawBwrapColumn: Column = {
  id: 'bwrap',
  title: 'raw bwrap',
  async unavailable() {
    if (!existsSync(BWRAP)) return `${BWRAP} not found (apt-get install bubblewrap)`;
    return runsTrueInScratch(rawBwrapColumn.open);
  },
  async open(workspace) {
    return {
      run: (argv) => runProcess(BWRAP, rawBwrapArgs(workspace, argv), { cwd: workspace }),
      async close() {},
    };
  },
  async memoryProbe(workspace) {
    return { file: BWRAP, args: rawBwrapArgs(workspace, ['true']), cwd: workspace };
  },
};
