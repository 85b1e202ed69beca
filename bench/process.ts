// Child-process helpers shared by every column: one way to spawn and wait, so the columns differ
// only in what they spawn, never in how the bench waits for it.
import { spawn, type SpawnOptions } from 'node:child_process';
import { closeSync, mkdtempSync, openSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface CommandResult {
  exitCode: number | null;
  signal: string | null;
  stdout: string;
  stderr: string;
  /** The spawned process id (to clean up what a peer leaves behind under its pid). */
  pid?: number;
}

export interface RunOptions {
  cwd: string;
  env?: NodeJS.ProcessEnv;
  /** argv[0] seen by the program (Codex's helper dispatches on it). */
  argv0?: string;
  /** Run `file` through /bin/sh (srt's library hands back one shell string). */
  shell?: boolean;
  /** Upper bound for one command; the child is SIGKILLed after it. */
  timeoutMs?: number;
  /**
   * Give the child regular files as stdout/stderr instead of Node's default socketpairs. Needed for
   * Codex: its seccomp filter fails getsockname(2) with EPERM, and Node programs inside then drop
   * everything they write to a socket stdout while still exiting 0.
   */
  outputToFiles?: boolean;
}

/** Output kept per stream; the bench only checks short outputs, and a runaway must not eat memory. */
const OUTPUT_CAP_BYTES = 1 << 20;
export const DEFAULT_COMMAND_TIMEOUT_MS = 60_000;

/** Spawn, collect stdout/stderr through pipes, resolve when the child exited and its pipes closed. */
export function runProcess(file: string, args: readonly string[], options: RunOptions): Promise<CommandResult> {
  if (options.outputToFiles) return runProcessWithOutputFiles(file, args, options);
  return new Promise((resolve) => {
    const spawnOptions: SpawnOptions = {
      cwd: options.cwd,
      env: options.env ?? process.env,
      stdio: ['ignore', 'pipe', 'pipe'],
    };
    if (options.argv0 !== undefined) spawnOptions.argv0 = options.argv0;
    if (options.shell) spawnOptions.shell = true;
    const child = spawn(file, [...args], spawnOptions);
    const stdout: Buffer[] = [];
    const stderr: Buffer[] = [];
    let stdoutBytes = 0;
    let stderrBytes = 0;
    child.stdout?.on('data', (chunk: Buffer) => {
      if (stdoutBytes < OUTPUT_CAP_BYTES) stdout.push(chunk);
      stdoutBytes += chunk.length;
    });
    child.stderr?.on('data', (chunk: Buffer) => {
      if (stderrBytes < OUTPUT_CAP_BYTES) stderr.push(chunk);
      stderrBytes += chunk.length;
    });
    const timer = setTimeout(() => child.kill('SIGKILL'), options.timeoutMs ?? DEFAULT_COMMAND_TIMEOUT_MS);
    let settled = false;
    let pid: number | undefined;
    const finish = (exitCode: number | null, signal: string | null, extraError = ''): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      const result: CommandResult = {
        exitCode,
        signal,
        stdout: Buffer.concat(stdout).toString('utf8'),
        stderr: Buffer.concat(stderr).toString('utf8') + extraError,
      };
      if (pid !== undefined) result.pid = pid;
      resolve(result);
    };
    child.on('error', (error) => finish(null, null, `spawn ${file}: ${error.message}`));
    child.on('close', (code, signal) => finish(code, signal));
    pid = child.pid;
  });
}

/** runProcess with stdout/stderr as regular files in a private temp dir, read back after exit. */
async function runProcessWithOutputFiles(file: string, args: readonly string[], options: RunOptions): Promise<CommandResult> {
  const directory = mkdtempSync(join(tmpdir(), 'cordon-bench-out-'));
  try {
    const stdoutPath = join(directory, 'stdout');
    const stderrPath = join(directory, 'stderr');
    const stdoutFd = openSync(stdoutPath, 'w');
    const stderrFd = openSync(stderrPath, 'w');
    const result = await new Promise<CommandResult>((resolve) => {
      const spawnOptions: SpawnOptions = { cwd: options.cwd, env: options.env ?? process.env, stdio: ['ignore', stdoutFd, stderrFd] };
      if (options.argv0 !== undefined) spawnOptions.argv0 = options.argv0;
      if (options.shell) spawnOptions.shell = true;
      const child = spawn(file, [...args], spawnOptions);
      // The child holds its own copies; closing ours now keeps no descriptor open past the run.
      closeSync(stdoutFd);
      closeSync(stderrFd);
      const timer = setTimeout(() => child.kill('SIGKILL'), options.timeoutMs ?? DEFAULT_COMMAND_TIMEOUT_MS);
      const finish = (exitCode: number | null, signal: string | null, error = ''): void => {
        clearTimeout(timer);
        const outcome: CommandResult = { exitCode, signal, stdout: '', stderr: error };
        if (child.pid !== undefined) outcome.pid = child.pid;
        resolve(outcome);
      };
      child.once('error', (error) => finish(null, null, `spawn ${file}: ${error.message}`));
      child.once('close', (code, signal) => finish(code, signal));
    });
    result.stdout = readFileSync(stdoutPath, 'utf8').slice(0, OUTPUT_CAP_BYTES);
    result.stderr = readFileSync(stderrPath, 'utf8').slice(0, OUTPUT_CAP_BYTES) + result.stderr;
    return result;
  } finally {
    rmSync(directory, { recursive: true, force: true });
  }
}

/** Quote one argument for a POSIX shell (srt takes a command string, not an argv). */
export function shellQuote(argument: string): string {
  if (/^[A-Za-z0-9_./:=@%+,-]+$/.test(argument)) return argument;
  return `'${argument.replaceAll("'", `'\\''`)}'`;
}

export function shellJoin(argv: readonly string[]): string {
  return argv.map(shellQuote).join(' ');
}

/** The first line worth showing from a failed command, for a one-line note. */
export function firstErrorLine(result: CommandResult): string {
  const text = (result.stderr.trim() || result.stdout.trim()).split('\n').find((line) => line.trim() !== '');
  const status = result.signal ? `signal ${result.signal}` : `exit ${result.exitCode}`;
  return text ? `${status}: ${text.slice(0, 160)}` : status;
}
