// The thin layer that carries out a LinuxPlan: starts bubblewrap with the launcher inside, hands
// it the plan, relays events, enforces the wall-clock timeout and makes sure nothing outlives the
// command. Policy is not decided here.
import { spawn, type ChildProcess } from 'node:child_process';
import { EventEmitter } from 'node:events';
import { closeSync, mkdirSync, openSync, rmSync, statSync } from 'node:fs';
import { dirname } from 'node:path';
import type { Readable, Writable } from 'node:stream';
import type { LinuxHostFacts } from './host.js';
import { encodeKillAll, encodePlan, encodeResize, encodeShutdown, encodeSignal, type LauncherEvent } from './launcher-protocol.js';
import { EMPTY_FD, RESOLV_FD, type LinuxPlan } from './plan.js';
import { reportLimits, SandboxCgroup, usageSince, type LimitsReport } from './limits/index.js';
import { trace } from '../trace.js';

/** bwrap writes its sandbox's host PID here, so cordon can put it in the cgroup before the plan. */
export const INFO_FD = 5;

export type StdioMode = 'inherit' | 'pipe' | 'ignore';

export interface LinuxSpawnOptions {
  plan: LinuxPlan;
  host: LinuxHostFacts;
  /** The command. Without it the sandbox is started "warm" and waits for begin(). */
  argv?: string[];
  stdio: [StdioMode, StdioMode, StdioMode];
  /** Run the command on a pseudo-terminal relayed to our stdin/stdout (interactive use). */
  pty?: boolean;
  timeoutMs?: number | null;
  /** Time between SIGTERM and SIGKILL when the timeout strikes or the sandbox is closed. */
  killGraceMs?: number;
  /**
   * A cgroup kept by the caller across commands (its limits hold for them together); without it
   * the command gets a cgroup of its own when the plan needs one.
   */
  cgroup?: SandboxCgroup | null;
}

export interface RawViolation {
  kind: 'syscall' | 'write';
  nr: number;
  path?: string;
  arg0?: number;
  arg1?: number;
}

export interface LayerState {
  landlockAbi: number;
  seccomp: boolean;
  noNewPrivs: boolean;
}

export interface LinuxOutcome {
  /** Exit status of the command, or null when it was killed by a signal. */
  code: number | null;
  signal: number | null;
  timedOut: boolean;
  /** errno of a failed exec (ENOENT: not found, EACCES/ENOEXEC: not executable), else 0. */
  execErrno: number;
  /** Set when the sandbox could not be set up: the command did not run. */
  setupError: string | null;
  layers: LayerState | null;
  violations: RawViolation[];
  usage: { userMs: number; sysMs: number; maxRssKb: number } | null;
  /** What the command used and which limit ended it. */
  limits: LimitsReport | null;
  durationMs: number;
}

/** A command running in a fresh Linux sandbox. */
export class LinuxSandboxProcess extends EventEmitter {
  readonly stdin: Writable | null;
  readonly stdout: Readable | null;
  readonly stderr: Readable | null;
  readonly exited: Promise<LinuxOutcome>;
  private child: ChildProcess;
  private timers: NodeJS.Timeout[] = [];
  private outcome: Partial<LinuxOutcome> & { violations: RawViolation[] } = { violations: [] };
  private done = false;
  private stderrTail = '';

  constructor(private readonly opts: LinuxSpawnOptions) {
    super();
    const start = performance.now();
    const { plan, host } = opts;
    if (!host.launcher) throw new Error('the cordon launcher is not built');
    const reduced = plan.tier === 'reduced';
    if (!reduced && !host.bwrap) throw new Error('bubblewrap (bwrap) is not installed');
    for (const dir of plan.ensureDirs) {
      try {
        if (statSync(dirname(dir)).isDirectory()) mkdirSync(dir, { mode: 0o755 });
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw new Error(`cannot create ${dir} to protect it: ${(e as Error).message}`);
      }
    }
    // Resource limits that need a cgroup: made before the sandbox starts, joined before the plan.
    const ownsCgroup = opts.cgroup === undefined;
    const cgroup = ownsCgroup ? (plan.limits ? SandboxCgroup.create(plan.limits) : null) : opts.cgroup!;
    let usageBefore: ReturnType<SandboxCgroup['readUsage']> | null = null;
    trace('cgroup ready');
    const nullFd = openSync('/dev/null', 'r'); // bwrap reads empty mask files from it
    const stdio: (StdioMode | 'ipc' | number)[] = [...opts.stdio, 'ipc'];
    while (stdio.length < EMPTY_FD) stdio.push('ignore');
    stdio[EMPTY_FD] = nullFd;
    if (cgroup && !reduced) stdio[INFO_FD] = 'pipe';
    if (plan.resolvConf) {
      while (stdio.length < RESOLV_FD) stdio.push('ignore');
      stdio[RESOLV_FD] = 'pipe';
    }
    // Capture bwrap's own complaints even when the command's stderr is inherited? No: in inherit
    // mode they reach the user directly, which is what they need to see.
    try {
      // Reduced tier: the launcher runs directly, without namespaces.
      const [command, args] = sandboxCommand(plan, host, cgroup !== null);
      this.child = spawn(command, args, {
        stdio: stdio as never,
        env: {}, // the launcher gets nothing from the host; the command's environment is in the plan
        detached: true, // terminal signals reach cordon, which forwards them deliberately
      });
    } catch (e) {
      cgroup?.removeSync();
      throw e;
    } finally {
      closeSync(nullFd);
    }
    trace('sandbox spawned');
    if (plan.resolvConf) (this.child.stdio as unknown as Writable[])[RESOLV_FD]!.end(plan.resolvConf);
    this.stdin = this.child.stdin;
    this.stdout = this.child.stdout;
    this.stderr = this.child.stderr;
    this.stderr?.on('data', (d: Buffer) => {
      this.stderrTail = (this.stderrTail + d.toString()).slice(-4096);
    });
    this.child.on('message', (msg: LauncherEvent, handle: unknown) => this.onEvent(msg, handle));
    this.child.on('error', (e) => {
      this.outcome.setupError ??= `cannot start bubblewrap: ${e.message}`;
    });
    this.joined = new Promise<void>((resolveJoin) => {
      if (!cgroup) resolveJoin();
      else this.joinCgroup(cgroup, reduced, resolveJoin);
    });
    this.sendPlan = (cmd) => {
      if (!ownsCgroup && cgroup) {
        // A cgroup shared across commands: measure this command from here.
        usageBefore = cgroup.readUsage();
        cgroup.resetPeak();
      }
      this.child.send(
      encodePlan({
        mode: 'single',
        noPidNamespace: reduced,
        argv: cmd.argv,
        env: cmd.env ? { ...plan.env, ...cmd.env } : plan.env,
        cwd: plan.cwd,
        pty: cmd.pty ?? false,
        rlimits: plan.rlimits,
        landlock: plan.landlock,
        seccomp: plan.seccomp,
        listeners: plan.listeners,
      }),
      (err) => {
        if (err) this.outcome.setupError ??= `cannot send the plan to the sandbox: ${err.message}`;
      },
    );
    };
    if (opts.argv) this.begin({ argv: opts.argv, pty: opts.pty, timeoutMs: opts.timeoutMs });
    else this.setRef(false);
    trace('constructor done');
    this.exited = new Promise((resolveExit) => {
      // 'close' can come before the 'message' events of the launcher's last read (Node emits those
      // on the next tick): let them arrive first.
      this.child.on('close', (code, signal) => setImmediate(() => void finish(code, signal)));
      const finish = async (code: number | null, signal: NodeJS.Signals | null) => {
        trace('sandbox closed');
        this.done = true;
        if (plan.tmpDir) rmSync(plan.tmpDir, { recursive: true, force: true });
        const now = cgroup?.readUsage() ?? null;
        const used = now && usageBefore ? usageSince(usageBefore, now) : now;
        if (ownsCgroup) await cgroup?.remove().catch(() => undefined);
        for (const t of this.timers) clearTimeout(t);
        const o = this.outcome;
        if (o.code === undefined && o.signal === undefined && !o.setupError) {
          // The launcher never reported an exit: bwrap or the launcher failed to set up.
          const bwrapSaid = this.stderrTail.split('\n').filter((l) => l.startsWith('bwrap:')).pop();
          o.setupError = bwrapSaid ? bwrapSaid.trim() : `the sandbox ended before the command ran (bwrap ${signal ? `signal ${signal}` : `exit ${code}`})`;
        }
        resolveExit({
          code: o.code ?? null,
          signal: o.signal ?? null,
          timedOut: o.timedOut ?? false,
          execErrno: o.execErrno ?? 0,
          setupError: o.setupError ?? null,
          layers: o.layers ?? null,
          violations: o.violations,
          usage: o.usage ?? null,
          limits: plan.limits && this.began
            ? reportLimits(plan.limits, { code: o.code ?? null, signal: o.signal ?? null, timedOut: o.timedOut ?? false, rusage: o.usage ?? null }, used)
            : null,
          durationMs: performance.now() - (this.began ?? start),
        });
      };
    });
  }

  get pid(): number | undefined {
    return this.child.pid;
  }

  private readonly joined: Promise<void>;
  private readonly sendPlan: (cmd: { argv: string[]; env?: Record<string, string>; pty?: boolean }) => void;
  /** When the command was given (performance.now()), or undefined while the sandbox is warm. */
  private began: number | undefined;

  /** False once the sandbox has ended (a warm one that died can no longer be used). */
  get alive(): boolean {
    return !this.done && this.child.exitCode === null && this.child.signalCode === null;
  }

  /** A warm sandbox must not keep the host process alive by itself: unref until it runs something. */
  private setRef(ref: boolean): void {
    const channel = (this.child as unknown as { channel?: { ref(): void; unref(): void } }).channel;
    const handles = [this.child, channel, ...this.child.stdio.filter(Boolean)] as { ref?(): void; unref?(): void }[];
    for (const h of handles) (ref ? h?.ref : h?.unref)?.call(h);
  }

  /** Runs the command in a sandbox started without one (see LinuxSpawnOptions.argv). */
  begin(cmd: { argv: string[]; env?: Record<string, string>; pty?: boolean; timeoutMs?: number | null }): void {
    if (this.began !== undefined) throw new Error('this sandbox already runs a command');
    this.began = performance.now();
    this.setRef(true);
    void this.joined.then(() => {
      trace('plan sent');
      if (!this.done) this.sendPlan(cmd);
    });
    if (cmd.timeoutMs) this.timers.push(setTimeout(() => this.terminate(true), cmd.timeoutMs));
  }

  /** Puts the sandbox's first process into the cgroup, then lets the plan go (fail closed). */
  private joinCgroup(cgroup: SandboxCgroup, reduced: boolean, then: () => void): void {
    joinSandboxCgroup(this.child, cgroup, reduced, then, (e) => {
      this.outcome.setupError ??= `cannot apply resource limits: ${e.message}`;
    });
  }

  private onEvent(msg: LauncherEvent, handle: unknown): void {
    switch (msg.e) {
      case 'ready':
        trace('launcher ready');
        this.outcome.layers = { landlockAbi: msg.landlock, seccomp: msg.seccomp, noNewPrivs: msg.noNewPrivs };
        this.emit('ready', this.outcome.layers);
        break;
      case 'exit':
        trace('command exited');
        this.outcome.code = msg.code;
        this.outcome.signal = msg.signal;
        this.outcome.execErrno = msg.execErrno;
        this.outcome.usage = { userMs: msg.userUs / 1000, sysMs: msg.sysUs / 1000, maxRssKb: msg.maxRssKb };
        break;
      case 'violation':
        this.outcome.violations.push(msg.kind === 'write' ? { kind: 'write', nr: msg.nr, path: msg.path } : { kind: 'syscall', nr: msg.nr, arg0: msg.arg0, arg1: msg.arg1 });
        this.emit('violation', this.outcome.violations.at(-1));
        break;
      case 'listener':
        this.emit('listener', msg.id, handle);
        break;
      case 'error':
        this.outcome.setupError = `sandbox setup failed: ${msg.msg}${msg.errno ? ` (${errnoName(msg.errno)})` : ''}`;
        break;
    }
  }

  private send(frame: { c: string }): void {
    if (!this.done && this.child.connected) this.child.send(frame, () => undefined);
  }

  /** Delivers a signal to the command's process group. */
  signal(signo: number): void {
    this.send(encodeSignal(0, signo));
  }

  resize(rows: number, cols: number): void {
    this.send(encodeResize(0, rows, cols));
  }

  /** SIGTERM to every process in the sandbox, SIGKILL after the grace period, then tear down. */
  terminate(timedOut = false): void {
    if (this.done) return;
    if (timedOut) this.outcome.timedOut = true;
    const grace = this.opts.killGraceMs ?? 2000;
    this.send(encodeKillAll(15));
    this.timers.push(
      setTimeout(() => this.send(encodeKillAll(9)), grace),
      // Last resort: the launcher does not answer; killing bwrap takes the namespace down.
      setTimeout(() => this.child.kill('SIGKILL'), grace + 1000),
    );
  }

  /** Immediate teardown of the whole sandbox. */
  kill(): void {
    if (this.done) return;
    if (this.began === undefined || !this.outcome.layers) {
      // Not set up yet (a warm sandbox, or one still starting). Killing bwrap now could orphan its
      // child mid-setup, blocked for ever on a signal from its dead parent: ask the launcher to end
      // it all as soon as it runs (its exit takes the namespace down). Disconnecting would do it
      // too, but then Node never reports the child closed.
      this.setRef(true); // whoever waits for its end must see it
      this.send(encodeShutdown());
      this.timers.push(setTimeout(() => this.child.kill('SIGKILL'), 3000));
      return;
    }
    this.send(encodeKillAll(9));
    this.timers.push(setTimeout(() => this.child.kill('SIGKILL'), 500));
  }
}

/**
 * Puts the sandbox's first process (bwrap's child, reported on --info-fd; the launcher itself in
 * the reduced tier) into the cgroup, then lets the plan go. On failure the sandbox is killed before
 * the plan could start anything (fail closed).
 */
export function joinSandboxCgroup(child: ChildProcess, cgroup: SandboxCgroup, reduced: boolean, then: () => void, failed: (e: Error) => void): void {
  const join = (pid: number) => {
    try {
      cgroup.addProcess(pid);
      trace('joined cgroup');
      then();
    } catch (e) {
      failed(e as Error);
      child.kill('SIGKILL');
    }
  };
  if (reduced) return join(child.pid!);
  let info = '';
  const stream = (child.stdio as unknown as Readable[])[INFO_FD]!;
  stream.on('data', (d: Buffer) => {
    info += d.toString();
    const m = /"child-pid":\s*(\d+)/.exec(info);
    if (m && info.includes('}')) {
      stream.removeAllListeners('data');
      stream.resume();
      join(Number(m[1]));
    }
  });
}

/**
 * The program and arguments that start a sandbox for `plan`: the launcher's stage (it dies with
 * cordon, closing the window in which bwrap could outlive a cordon killed during its start-up,
 * and with --netns sets up the network namespace cordon owns), which becomes bwrap with the
 * launcher inside; in the reduced tier, the launcher alone.
 */
export function sandboxCommand(plan: LinuxPlan, host: LinuxHostFacts, withInfoFd: boolean): [string, string[]] {
  if (plan.tier === 'reduced') return [host.launcher!, []];
  const bwrap = [...(withInfoFd ? ['--info-fd', String(INFO_FD)] : []), ...plan.bwrapArgs, '--', host.launcher!];
  const netns = plan.netns ? ['--netns', '--lo-alias', plan.netns.loAlias] : [];
  return [host.launcher!, ['--stage', '--parent', String(process.pid), ...netns, '--', host.bwrap!, ...bwrap]];
}

const ERRNO_NAMES: Record<number, string> = { 1: 'EPERM', 2: 'ENOENT', 12: 'ENOMEM', 13: 'EACCES', 22: 'EINVAL', 38: 'ENOSYS', 95: 'EOPNOTSUPP' };
export function errnoName(n: number): string {
  return ERRNO_NAMES[n] ?? `errno ${n}`;
}
