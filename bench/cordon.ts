// cordon's three columns: the CLI as a whole process, the library per command, and a session per
// command. The library is loaded dynamically so the bench still runs (and says why a column is
// missing) while the API is being written or when it throws.
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { PolicyInput } from '../src/policy/types.js';
import { runsTrueInScratch, type Column, type ColumnRunner, type MemoryProbe } from './columns.js';
import { runProcess, type CommandResult } from './process.js';
import { memoryDriverProbe } from './layout.js';

// Compiled layout: dist/bench/cordon.js next to dist/src/. The environment may point the bench at
// another build (another checkout, an installed package) to compare the two.
const LIBRARY_ENTRY = process.env.CORDON_BENCH_LIBRARY ?? fileURLToPath(new URL('../src/index.js', import.meta.url));
const CLI_ENTRY = process.env.CORDON_BENCH_CLI ?? fileURLToPath(new URL('../src/cli/cordon.mjs', import.meta.url));

/** The slice of cordon's public API the bench relies on; checked at run time, not trusted. */
interface CordonResult {
  exitCode: number | null;
  signal?: string | null;
  stdout?: string | Uint8Array;
  stderr?: string | Uint8Array;
}
interface CordonSession {
  run?(argv: string[], options?: object): Promise<CordonResult>;
  close(): Promise<void>;
}
interface CordonSandbox {
  run(argv: string[], options?: object): Promise<CordonResult>;
  openSession?(options?: object): Promise<CordonSession>;
  close(): Promise<void>;
}
/** `cwd` is where commands start (cordon's default is the host's current directory). */
type CreateSandbox = (options: { policy: PolicyInput; cwd: string }) => Promise<CordonSandbox>;

let loaded: Promise<CreateSandbox | string> | undefined;

/** createSandbox, or the one-line reason it cannot be used. */
function loadCreateSandbox(): Promise<CreateSandbox | string> {
  loaded ??= (async () => {
    if (!existsSync(LIBRARY_ENTRY)) return `cordon library not built yet (${LIBRARY_ENTRY} missing)`;
    try {
      const module = (await import(LIBRARY_ENTRY)) as { createSandbox?: unknown };
      if (typeof module.createSandbox !== 'function') return 'cordon library does not export createSandbox() yet';
      return module.createSandbox as CreateSandbox;
    } catch (error) {
      return `cordon library failed to load: ${errorText(error)}`;
    }
  })();
  return loaded;
}

function errorText(error: unknown): string {
  const text = error instanceof Error ? error.message : String(error);
  return text.split('\n')[0]!.slice(0, 200);
}

function toResult(result: CordonResult): CommandResult {
  const text = (value: string | Uint8Array | undefined): string =>
    value === undefined ? '' : typeof value === 'string' ? value : Buffer.from(value).toString('utf8');
  return {
    exitCode: result.exitCode,
    signal: result.signal ?? null,
    stdout: text(result.stdout),
    stderr: text(result.stderr),
  };
}

function workspacePolicy(workspace: string): PolicyInput {
  return { mode: 'workspace-write', workspace };
}

export const cordonCliColumn: Column = {
  id: 'cordon-cli',
  title: 'cordon run (CLI)',
  async unavailable() {
    if (!existsSync(CLI_ENTRY)) return `cordon CLI not built yet (${CLI_ENTRY} missing)`;
    return runsTrueInScratch(cordonCliColumn.open);
  },
  async open(workspace) {
    return {
      run: (argv) => runProcess(process.execPath, [CLI_ENTRY, 'run', '--', ...argv], { cwd: workspace }),
      async close() {},
    };
  },
  async memoryProbe(workspace): Promise<MemoryProbe> {
    return { file: process.execPath, args: [CLI_ENTRY, 'run', '--', 'true'], cwd: workspace };
  },
};

export async function openCordonLibrary(workspace: string): Promise<ColumnRunner> {
  const createSandbox = await loadCreateSandbox();
  if (typeof createSandbox === 'string') throw new Error(createSandbox);
  const sandbox = await createSandbox({ policy: workspacePolicy(workspace), cwd: workspace });
  return {
    run: async (argv) => toResult(await sandbox.run([...argv])),
    close: () => sandbox.close(),
  };
}

export async function openCordonSession(workspace: string): Promise<ColumnRunner> {
  const createSandbox = await loadCreateSandbox();
  if (typeof createSandbox === 'string') throw new Error(createSandbox);
  const sandbox = await createSandbox({ policy: workspacePolicy(workspace), cwd: workspace });
  try {
    if (typeof sandbox.openSession !== 'function') throw new Error('cordon sandbox has no openSession() yet');
    const session = await sandbox.openSession();
    // run(argv) is the per-command call; exec(script) takes a shell string, which would add a shell.
    if (typeof session.run !== 'function') {
      await session.close();
      throw new Error('cordon session has no run(argv) yet');
    }
    const runInSession = session.run.bind(session);
    return {
      run: async (argv) => toResult(await runInSession([...argv])),
      async close() {
        try {
          await session.close();
        } finally {
          await sandbox.close();
        }
      },
    };
  } catch (error) {
    await sandbox.close();
    throw error;
  }
}

/** A library column is usable when the library loads and `true` runs through it. */
function libraryAvailability(open: (workspace: string) => Promise<ColumnRunner>): () => Promise<string | null> {
  return async () => {
    const createSandbox = await loadCreateSandbox();
    return typeof createSandbox === 'string' ? createSandbox : runsTrueInScratch(open);
  };
}

export const cordonLibraryColumn: Column = {
  id: 'cordon-lib',
  title: 'cordon library',
  unavailable: libraryAvailability(openCordonLibrary),
  open: openCordonLibrary,
  memoryProbe: async (workspace) => memoryDriverProbe('cordon-lib', workspace),
};

export const cordonSessionColumn: Column = {
  id: 'cordon-session',
  title: 'cordon session',
  unavailable: libraryAvailability(openCordonSession),
  open: openCordonSession,
  memoryProbe: async (workspace) => memoryDriverProbe('cordon-session', workspace),
};
