// What a command run in a sandbox returns, and the pieces shared by one-shot runs and sessions.
import { existsSync } from 'node:fs';
import type { Readable, Writable } from 'node:stream';
import { HeadTailCapture } from './output.js';
import { explainSyscall, explainWrite, type Violation } from './policy/explain.js';
import type { ResolvedPolicy } from './policy/types.js';
import type { LinuxPlan } from './linux/plan.js';
import type { Denial } from './network/proxy.js';
import { errnoName, type LinuxOutcome, type StdioMode } from './linux/run.js';

export interface SpawnOptions {
  /** Default: ['pipe', 'pipe', 'pipe']. */
  stdio?: [StdioMode, StdioMode, StdioMode];
  /** Run on a pseudo-terminal relayed to this process's terminal (interactive shells). */
  pty?: boolean;
  /** Wall-clock limit for this command; default: the policy's `limits.timeout`. */
  timeoutMs?: number | null;
  /** Extra variables for this command. */
  env?: Record<string, string>;
}

export interface RunOptions extends Omit<SpawnOptions, 'stdio' | 'pty'> {
  /** Written to the command's stdin (then closed). Default: stdin is empty. */
  input?: string | Buffer;
  /** Bytes of stdout and of stderr kept (head and tail); default 1 MiB each. */
  maxOutputBytes?: number;
}

export interface CommandResult {
  /** The command's exit status; 128+N if killed by signal N; 124 on timeout; 126/127 if it could not be executed / found. */
  exitCode: number;
  /** Name of the signal that ended the command, if one did. */
  signal: NodeJS.Signals | null;
  timedOut: boolean;
  /** What the sandbox denied while the command ran, with the rule that denied it. */
  violations: Violation[];
  /** Things worth telling the user (e.g. the command created a file your editor runs). */
  notices: string[];
  /**
   * Resources the command used: CPU time, and peak memory (of the whole sandbox when a cgroup
   * measured it, else of its largest process).
   */
  usage: { userMs: number; sysMs: number; maxRssKb: number; cpuMs: number | null; peakMemoryBytes: number | null } | null;
  /** The resource limit that ended the command (memory, process count, wall-clock), if one did. */
  limitHit: 'memory' | 'pids' | 'timeout' | null;
  durationMs: number;
}

export interface RunResult extends CommandResult {
  stdout: string;
  stderr: string;
  /** Bytes cut from the middle of each stream because of `maxOutputBytes`. */
  cut: { stdout: number; stderr: number };
}

const SIGNAL_NAMES = ['', 'SIGHUP', 'SIGINT', 'SIGQUIT', 'SIGILL', 'SIGTRAP', 'SIGABRT', 'SIGBUS', 'SIGFPE', 'SIGKILL', 'SIGUSR1', 'SIGSEGV', 'SIGUSR2', 'SIGPIPE', 'SIGALRM', 'SIGTERM'];

/** A command started with `sandbox.spawn()`. */
export interface SandboxedCommand {
  readonly stdin: Writable | null;
  readonly stdout: Readable | null;
  readonly stderr: Readable | null;
  /** Resolves when the command and everything it started have ended. */
  readonly result: Promise<CommandResult>;
  /** Send a signal to the command's process group (e.g. 2 for SIGINT). */
  signal(signo: number): void;
  resize(rows: number, cols: number): void;
  /** SIGTERM to everything in the sandbox, SIGKILL after a grace period. */
  terminate(): void;
}

/** Resolves when a stream has closed (or at once if it already has). */
export function ended(s: Readable): Promise<void> {
  return new Promise((r) => {
    if (s.readableEnded || s.destroyed) return r();
    s.once('close', () => r());
  });
}

/**
 * Captures stdout and stderr of a command with head+tail caps. Output that arrives after the
 * command exited is still captured while it flows, up to a short quiet period: background
 * processes a session command left running may keep the pipes open for hours.
 */
export async function collectOutput(
  cmd: Pick<SandboxedCommand, 'stdout' | 'stderr' | 'result'>,
  limit: number,
): Promise<{ result: CommandResult; stdout: HeadTailCapture; stderr: HeadTailCapture }> {
  const out = new HeadTailCapture(limit);
  const err = new HeadTailCapture(limit);
  let last = performance.now();
  const onOut = (d: Buffer) => {
    out.push(d);
    last = performance.now();
  };
  const onErr = (d: Buffer) => {
    err.push(d);
    last = performance.now();
  };
  cmd.stdout?.on('data', onOut);
  cmd.stderr?.on('data', onErr);
  const streamsEnded = Promise.all([cmd.stdout ? ended(cmd.stdout) : null, cmd.stderr ? ended(cmd.stderr) : null]);
  const result = await cmd.result;
  let stop = false;
  const quiet = async () => {
    const QUIET_MS = 25;
    for (let i = 0; i < 400 && !stop; i++) {
      await new Promise((r) => setTimeout(r, 5));
      if (performance.now() - last >= QUIET_MS) return;
    }
  };
  await Promise.race([streamsEnded, quiet()]);
  stop = true;
  cmd.stdout?.off('data', onOut);
  cmd.stderr?.off('data', onErr);
  // Keep draining what background processes write, so they never block on a full pipe.
  cmd.stdout?.resume();
  cmd.stderr?.resume();
  return { result, stdout: out, stderr: err };
}

export function toResult(o: LinuxOutcome, policy: ResolvedPolicy, plan: LinuxPlan, home: string, notices: string[]): CommandResult {
  let exitCode: number;
  if (o.timedOut) exitCode = 124;
  else if (o.execErrno) exitCode = o.execErrno === 2 ? 127 : 126;
  else if (o.signal !== null) exitCode = 128 + o.signal;
  else exitCode = o.code ?? 1;
  if (o.execErrno >= 1000) notices.push(`the command could not be started: ${['chdir', 'seccomp filter', 'resource limit'][Math.floor(o.execErrno / 1000) - 1]} failed (${errnoName(o.execErrno % 1000)})`);
  const names = plan.seccomp?.names ?? new Map<number, string>();
  const violations: Violation[] = [];
  const seen = new Set<string>();
  for (const v of o.violations) {
    const name = names.get(v.nr) ?? `syscall ${v.nr}`;
    const viol = v.kind === 'write' ? explainWrite(policy, v.path!, name, home) : explainSyscall(name);
    if (!seen.has(viol.message)) {
      seen.add(viol.message);
      violations.push(viol);
    }
  }
  if (o.signal === 31)
    violations.push({ kind: 'syscall', syscall: 'SIGSYS', message: 'the command was killed by the seccomp filter: it made a 32-bit (i386/x32) system call, which the sandbox refuses' });
  return {
    exitCode,
    signal: o.signal !== null ? ((SIGNAL_NAMES[o.signal] ?? `SIG${o.signal}`) as NodeJS.Signals) : null,
    timedOut: o.timedOut,
    violations,
    notices: [...(o.limits?.reason && o.limits.limitHit !== 'timeout' ? [o.limits.reason] : []), ...(o.limits?.notes ?? []), ...notices],
    usage: o.usage ? { ...o.usage, cpuMs: o.limits?.usage.cpuMs ?? null, peakMemoryBytes: o.limits?.usage.peakMemoryBytes ?? null } : null,
    limitHit: o.limits?.limitHit ?? (o.timedOut ? 'timeout' : null),
    durationMs: o.durationMs,
  };
}

/** The proxy's refusals since `since` (ms since the epoch), one violation per host and port. */
export function networkViolations(denials: readonly Denial[], since = 0): Violation[] {
  const seen = new Set<string>();
  const out: Violation[] = [];
  for (const d of denials) {
    const key = `${d.host}:${d.port ?? ''}`;
    if (d.time < since || seen.has(key)) continue;
    seen.add(key);
    out.push(denialToViolation(d));
  }
  return out;
}

/** One refusal of the proxy, as a violation the user and the agent can act on. */
export function denialToViolation(d: Denial): Violation {
  const where = d.port === null ? d.host : `${d.host}:${d.port}`;
  return { kind: 'network', host: d.host, port: d.port ?? 0, rule: d.rule ?? 'not in the allow list', message: `denied network access to ${where} (${d.reason}; ${d.fix})` };
}

/** Protected names that did not exist before the command and do now (they could not be pinned). */
export function createdNotices(watched: readonly string[], before: ReadonlySet<string>): string[] {
  return watched.filter((p) => !before.has(p) && existsSync(p)).map((p) => `the command created ${p}, which your tools may run later; review it`);
}
