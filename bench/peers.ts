// The peers' columns: srt (CLI and library) and Codex (`codex sandbox` and its per-command helper),
// each given a workspace-write policy equivalent to cordon's default: host read-only, workspace
// writable, `.git/hooks` and `.git/config` read-only, network off.
import { existsSync, mkdirSync, readFileSync, readdirSync, rmSync, statSync, symlinkSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { runsTrueInScratch, type Column, type ColumnRunner } from './columns.js';
import { PEERS_DIR, findOnPath, memoryDriverProbe, writableStateDir } from './layout.js';
import { firstErrorLine, runProcess, shellJoin, type CommandResult } from './process.js';

const SRT_PACKAGE = '@anthropic-ai/sandbox-runtime';
const CODEX_PACKAGE = '@openai/codex';
const SRT_DIR = join(PEERS_DIR, 'node_modules', SRT_PACKAGE);
const SRT_CLI = join(SRT_DIR, 'dist', 'cli.js');
const SRT_LIBRARY = join(SRT_DIR, 'dist', 'index.js');
const CODEX_DIR = join(PEERS_DIR, 'node_modules', CODEX_PACKAGE);
const CODEX_CLI = join(CODEX_DIR, 'bin', 'codex.js');
const CODEX_PROFILE = 'cordonbench';

let codexHomeDirectory: string | undefined;
/** Codex refuses to put its helper links under /tmp, so its home lives in the repo's .bench/. */
function codexHome(): string {
  codexHomeDirectory ??= writableStateDir('codex-home');
  return codexHomeDirectory;
}

/** The helper is the codex binary itself, selected by argv[0] through a link with this name. */
function codexHelperLink(): string {
  return join(codexHome(), 'bin', 'codex-linux-sandbox');
}

function packageVersion(directory: string): string | null {
  try {
    return (JSON.parse(readFileSync(join(directory, 'package.json'), 'utf8')) as { version?: string }).version ?? null;
  } catch {
    return null;
  }
}

export function peerVersions(): { srt: string | null; codex: string | null } {
  return { srt: packageVersion(SRT_DIR), codex: packageVersion(CODEX_DIR) };
}

/**
 * Install the peers into .bench/peers when missing (the bench installs them itself so it runs from
 * a clean clone with one command). Returns a note to print, or null when nothing was needed.
 */
export async function ensurePeersInstalled(allowInstall: boolean): Promise<string | null> {
  const missing = [SRT_PACKAGE, CODEX_PACKAGE].filter((name) => packageVersion(join(PEERS_DIR, 'node_modules', name)) === null);
  if (missing.length === 0) return null;
  const command = `npm install --prefix ${PEERS_DIR} ${missing.join(' ')}`;
  if (!allowInstall) return `peers missing (${missing.join(', ')}); install them with \`${command}\``;
  process.stderr.write(`bench: installing ${missing.join(', ')} into ${PEERS_DIR} …\n`);
  mkdirSync(PEERS_DIR, { recursive: true });
  const npm = findOnPath('npm');
  if (!npm) return `npm not on PATH; peers skipped (install them with \`${command}\`)`;
  const result = await runProcess(npm, ['install', '--prefix', PEERS_DIR, '--no-audit', '--no-fund', '--loglevel=error', ...missing], {
    cwd: PEERS_DIR,
    timeoutMs: 600_000,
  });
  return result.exitCode === 0 ? `installed ${missing.join(', ')} into ${PEERS_DIR}` : `\`${command}\` failed (${firstErrorLine(result)})`;
}

// ---------------------------------------------------------------------------------------------- srt

/** srt's settings for one workspace: nothing writable but the workspace, no domain allowed. */
function srtSettings(workspace: string): object {
  return {
    network: { allowedDomains: [], deniedDomains: [] },
    filesystem: { denyRead: [], allowWrite: [workspace], denyWrite: [] },
  };
}

function srtUnavailableReason(): string | null {
  if (process.platform !== 'linux') return 'the bench drives srt on Linux only';
  if (packageVersion(SRT_DIR) === null) return `${SRT_PACKAGE} not installed in ${PEERS_DIR}`;
  const missingTools = ['bwrap', 'socat', 'rg'].filter((tool) => findOnPath(tool) === null);
  if (missingTools.length > 0) return `srt needs ${missingTools.join(', ')} on PATH (apt-get install bubblewrap socat ripgrep)`;
  return null;
}

/** srt's CLI leaves its mux socket (`srt-mux-<pid>-<n>.sock`) behind; remove the ones our runs made. */
function removeSrtLeftovers(pid: number | undefined): void {
  if (pid === undefined) return;
  const prefix = `srt-mux-${pid}-`;
  try {
    for (const name of readdirSync(tmpdir())) {
      if (name.startsWith(prefix) && name.endsWith('.sock')) rmSync(join(tmpdir(), name), { force: true });
    }
  } catch {
    // best effort: a leftover socket is harmless to the measurement
  }
}

/**
 * Under `/usr/bin/time` the srt process id is unknown: remove mux sockets made since `since` whose
 * process is gone (a live process's socket may belong to someone else's srt).
 */
function removeOrphanedSrtSockets(since: number): void {
  try {
    for (const name of readdirSync(tmpdir())) {
      const match = /^srt-mux-(\d+)-\d+\.sock$/.exec(name);
      if (!match) continue;
      const path = join(tmpdir(), name);
      if (statSync(path).mtimeMs < since || processAlive(Number(match[1]))) continue;
      rmSync(path, { force: true });
    }
  } catch {
    // best effort, as above
  }
}

function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

function srtSettingsPath(workspace: string): string {
  return `${workspace}.srt-settings.json`;
}

export const srtCliColumn: Column = {
  id: 'srt-cli',
  title: 'srt (CLI)',
  async unavailable() {
    return srtUnavailableReason() ?? runsTrueInScratch(srtCliColumn.open);
  },
  async open(workspace) {
    const settings = srtSettingsPath(workspace);
    writeFileSync(settings, JSON.stringify(srtSettings(workspace)));
    return {
      async run(argv) {
        const result = await runProcess(process.execPath, [SRT_CLI, '-s', settings, '-c', shellJoin(argv)], { cwd: workspace });
        removeSrtLeftovers(result.pid);
        return result;
      },
      async close() {
        rmSync(settings, { force: true });
      },
    };
  },
  async memoryProbe(workspace) {
    const settings = srtSettingsPath(workspace);
    writeFileSync(settings, JSON.stringify(srtSettings(workspace)));
    const since = Date.now() - 1000;
    return {
      file: process.execPath,
      args: [SRT_CLI, '-s', settings, '-c', 'true'],
      cwd: workspace,
      cleanup: () => removeOrphanedSrtSockets(since),
    };
  },
};

interface SrtManager {
  initialize(config: object, ask?: unknown, enableLogMonitor?: boolean): Promise<void>;
  wrapWithSandbox(command: string): Promise<string>;
  cleanupAfterCommand(): void;
  reset(): Promise<void>;
}

let srtManager: Promise<SrtManager> | undefined;
/** srt's SandboxManager is a process-wide singleton: one open workspace at a time. */
let srtOpenWorkspace: string | null = null;

function loadSrtManager(): Promise<SrtManager> {
  srtManager ??= (import(SRT_LIBRARY) as Promise<{ SandboxManager: SrtManager }>).then((module) => module.SandboxManager);
  return srtManager;
}

export async function openSrtLibrary(workspace: string): Promise<ColumnRunner> {
  if (srtOpenWorkspace !== null) throw new Error(`srt library already open for ${srtOpenWorkspace}`);
  const manager = await loadSrtManager();
  // srt derives its mandatory denies from process.cwd(), as its host (an agent) runs in the checkout.
  const hostCwd = process.cwd();
  process.chdir(workspace);
  try {
    await manager.initialize(srtSettings(workspace), undefined, false);
  } finally {
    process.chdir(hostCwd);
  }
  srtOpenWorkspace = workspace;
  return {
    async run(argv): Promise<CommandResult> {
      const callerCwd = process.cwd();
      process.chdir(workspace);
      let wrapped: string;
      try {
        wrapped = await manager.wrapWithSandbox(shellJoin(argv));
      } finally {
        process.chdir(callerCwd);
      }
      try {
        return await runProcess(wrapped, [], { cwd: workspace, shell: true });
      } finally {
        manager.cleanupAfterCommand();
      }
    },
    async close() {
      srtOpenWorkspace = null;
      await manager.reset();
      removeSrtLeftovers(process.pid);
    },
  };
}

export const srtLibraryColumn: Column = {
  id: 'srt-lib',
  title: 'srt library',
  async unavailable() {
    return srtUnavailableReason() ?? runsTrueInScratch(openSrtLibrary);
  },
  open: openSrtLibrary,
  memoryProbe: async (workspace) => memoryDriverProbe('srt-lib', workspace),
};

// -------------------------------------------------------------------------------------------- Codex

function codexTargetTriple(): { triple: string; packageName: string } | null {
  if (process.platform !== 'linux') return null;
  if (process.arch === 'x64') return { triple: 'x86_64-unknown-linux-musl', packageName: '@openai/codex-linux-x64' };
  if (process.arch === 'arm64') return { triple: 'aarch64-unknown-linux-musl', packageName: '@openai/codex-linux-arm64' };
  return null;
}

function codexNativeBinary(): string | null {
  const target = codexTargetTriple();
  if (!target) return null;
  // npm installs the platform package next to @openai/codex (or nested under it, depending on hoisting).
  for (const base of [join(PEERS_DIR, 'node_modules'), join(CODEX_DIR, 'node_modules')]) {
    const candidate = join(base, target.packageName, 'vendor', target.triple, 'bin', 'codex');
    if (existsSync(candidate)) return candidate;
  }
  return null;
}

/**
 * A permissions profile equivalent to cordon's workspace-write default. Codex's built-in
 * `:workspace` makes all of `.git` read-only (so `git commit` fails); re-opening `.git` and
 * protecting hooks and config matches cordon's policy. Network stays off (Codex's default).
 */
const CODEX_CONFIG = `# Written by cordon's bench (bench/peers.ts).
[permissions.${CODEX_PROFILE}.filesystem]
":root" = "read"
":tmpdir" = "write"
":slash_tmp" = "write"

[permissions.${CODEX_PROFILE}.filesystem.":workspace_roots"]
"." = "write"
".git" = "write"
".git/hooks" = "read"
".git/config" = "read"
`;

function prepareCodexHome(): void {
  const link = codexHelperLink();
  mkdirSync(dirname(link), { recursive: true });
  writeFileSync(join(codexHome(), 'config.toml'), CODEX_CONFIG);
  const binary = codexNativeBinary();
  if (binary === null) return;
  try {
    unlinkSync(link);
  } catch {
    // no previous link
  }
  symlinkSync(binary, link);
}

function codexEnv(): NodeJS.ProcessEnv {
  return { ...process.env, CODEX_HOME: codexHome() };
}

function codexUnavailableReason(): string | null {
  if (!codexTargetTriple()) return `the bench drives Codex on Linux x64/arm64 only`;
  if (packageVersion(CODEX_DIR) === null) return `${CODEX_PACKAGE} not installed in ${PEERS_DIR}`;
  if (codexNativeBinary() === null) return `Codex's platform binary is missing (reinstall ${CODEX_PACKAGE})`;
  return null;
}

function codexCliArgs(workspace: string, argv: readonly string[]): string[] {
  return [CODEX_CLI, 'sandbox', '-P', CODEX_PROFILE, '-C', workspace, '--', ...argv];
}

export const codexCliColumn: Column = {
  id: 'codex-cli',
  title: 'codex sandbox (CLI)',
  async unavailable() {
    const reason = codexUnavailableReason();
    if (reason) return reason;
    prepareCodexHome();
    return runsTrueInScratch(codexCliColumn.open);
  },
  async open(workspace) {
    const env = codexEnv();
    return {
      run: (argv) => runProcess(process.execPath, codexCliArgs(workspace, argv), { cwd: workspace, env, outputToFiles: true }),
      async close() {},
    };
  },
  async memoryProbe(workspace) {
    return { file: process.execPath, args: codexCliArgs(workspace, ['true']), cwd: workspace, env: codexEnv() };
  },
};

/** The JSON profile `codex sandbox -P cordonbench` hands its helper (same entries, same order). */
function codexHelperProfile(workspace: string): string {
  const path = (value: string) => ({ type: 'path', path: value });
  const special = (kind: string) => ({ type: 'special', value: { kind } });
  return JSON.stringify({
    type: 'managed',
    file_system: {
      type: 'restricted',
      entries: [
        { path: special('root'), access: 'read' },
        { path: special('slash_tmp'), access: 'write' },
        { path: special('tmpdir'), access: 'write' },
        { path: path(workspace), access: 'write' },
        { path: path(join(workspace, '.git')), access: 'write', missing_path_behavior: 'skip' },
        { path: path(join(workspace, '.git', 'config')), access: 'read', missing_path_behavior: 'skip' },
        { path: path(join(workspace, '.git', 'hooks')), access: 'read', missing_path_behavior: 'skip' },
      ],
    },
    network: 'restricted',
  });
}

function codexHelperArgs(workspace: string, argv: readonly string[]): string[] {
  return ['--sandbox-policy-cwd', workspace, '--command-cwd', workspace, '--permission-profile', codexHelperProfile(workspace), '--', ...argv];
}

export const codexHelperColumn: Column = {
  id: 'codex-helper',
  title: 'codex helper',
  async unavailable() {
    const reason = codexUnavailableReason();
    if (reason) return reason;
    prepareCodexHome();
    return runsTrueInScratch(codexHelperColumn.open);
  },
  async open(workspace) {
    const env = codexEnv();
    const link = codexHelperLink();
    return {
      run: (argv) => runProcess(link, codexHelperArgs(workspace, argv), { cwd: workspace, env, outputToFiles: true }),
      async close() {},
    };
  },
  async memoryProbe(workspace) {
    return { file: codexHelperLink(), args: codexHelperArgs(workspace, ['true']), cwd: workspace, env: codexEnv() };
  },
};
