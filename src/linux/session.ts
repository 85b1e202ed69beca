// A long-lived Linux sandbox in which many commands run: bubblewrap, the mount view, Landlock
// and the proxy are set up once; each command is then one fork+exec in the launcher (with its
// seccomp filter), with stdio pipes handed back over the IPC channel. Carries out a plan; decides
// nothing about policy.
import { spawn, type ChildProcess } from 'node:child_process';
import { EventEmitter } from 'node:events';
import { closeSync, mkdirSync, openSync, rmSync, statSync } from 'node:fs';
import net from 'node:net';
import { dirname } from 'node:path';
import type { Readable, Writable } from 'node:stream';
import type { LinuxHostFacts } from './host.js';
import { encodeExec, encodeKillAll, encodePlan, encodeResize, encodeShutdown, encodeSignal, type LauncherEvent } from './launcher-protocol.js';
import { EMPTY_FD, RESOLV_FD, type LinuxPlan } from './plan.js';
import { errnoName, INFO_FD, joinSandboxCgroup, sandboxCommand, type LayerState, type LinuxOutcome, type RawViolation } from './run.js';
import { reportLimits, SandboxCgroup, type CgroupUsage } from './limits/index.js';


export interface SessionJobOptions {
  argv: string[];
  env: Record<string, string>;
  cwd: string;
  /** Also open fd 3 in the command as a pipe back to cordon (the session's state channel). */
  statePipe?: boolean;
  /** 'null': the command's stdin is /dev/null (one pipe fewer to hand over). Default 'pipe'. */
  stdin?: 'pipe' | 'null';
  pty?: boolean;
  timeoutMs?: number | null;
  killGraceMs?: number;
}

export interface SessionJob {
  readonly id: number;
  stdin: Writable | null;
  stdout: Readable | null;
  stderr: Readable | null;
  state: Readable | null;
  /** Resolves when the command's own process has exited (background children may live on). */
  readonly exited: Promise<LinuxOutcome>;
  signal(signo: number): void;
  resize(rows: number, cols: number): void;
  terminate(): void;
}

interface JobRecord {
  job: SessionJob;
  started: number;
  streams: Map<number, Readable | Writable>;
  streamWaiters: ((fd: number) => void)[];
  violations: RawViolation[];
  timedOut: boolean;
  timers: NodeJS.Timeout[];
  finish: (o: LinuxOutcome) => void;
}

export class LinuxSession extends EventEmitter {
  private child: ChildProcess;
  private jobs = new Map<number, JobRecord>();
  /** Cgroup counters when each job started, to tell which job a limit event belongs to. */
  private usageAtStart = new Map<number, CgroupUsage>();
  private nextJob = 1;
  private closed = false;
  private exitedOnce: Promise<void>;
  private readyOnce: Promise<LayerState>;
  layers: LayerState | null = null;
  private setupError: string | null = null;
  private stderrTail = '';
  /** The session's cgroup: its limits hold for everything the session runs, together. */
  private cgroup: SandboxCgroup | null;

  constructor(
    private readonly plan: LinuxPlan,
    host: LinuxHostFacts,
  ) {
    super();
    if (!host.launcher) throw new Error('the cordon launcher is not built');
    const reduced = plan.tier === 'reduced';
    for (const dir of plan.ensureDirs) {
      try {
        if (statSync(dirname(dir)).isDirectory()) mkdirSync(dir, { mode: 0o755 });
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw new Error(`cannot create ${dir} to protect it: ${(e as Error).message}`);
      }
    }
    this.cgroup = plan.limits ? SandboxCgroup.create(plan.limits) : null;
    const nullFd = openSync('/dev/null', 'r');
    const stdio: unknown[] = ['ignore', 'ignore', 'pipe', 'ipc'];
    stdio[EMPTY_FD] = nullFd;
    if (this.cgroup && !reduced) stdio[INFO_FD] = 'pipe';
    if (plan.resolvConf) stdio[RESOLV_FD] = 'pipe';
    try {
      const [command, args] = sandboxCommand(plan, host, this.cgroup !== null && !reduced);
      this.child = spawn(command, args, { stdio: Array.from(stdio, (x) => x ?? 'ignore') as never, env: {}, detached: true });
      if (plan.resolvConf) (this.child.stdio as unknown as Writable[])[RESOLV_FD]!.end(plan.resolvConf);
    } catch (e) {
      this.cgroup?.removeSync();
      throw e;
    } finally {
      closeSync(nullFd);
    }
    this.child.stderr!.on('data', (d: Buffer) => {
      this.stderrTail = (this.stderrTail + d.toString()).slice(-4096);
    });
    this.child.on('message', (msg: LauncherEvent, handle: unknown) => this.onEvent(msg, handle));
    this.child.on('error', (e) => {
      this.setupError ??= `cannot start the sandbox: ${e.message}`;
    });
    this.readyOnce = new Promise((resolveReady, rejectReady) => {
      this.once('ready', resolveReady);
      this.once('failed', rejectReady);
    });
    this.readyOnce.catch(() => undefined);
    this.exitedOnce = new Promise((resolveExit) => {
      // After the 'message' events of the launcher's last read (Node emits those on the next tick).
      this.child.on('close', () => setImmediate(async () => {
        this.closed = true;
        if (plan.tmpDir) rmSync(plan.tmpDir, { recursive: true, force: true });
        await this.cgroup?.remove().catch(() => undefined);
        const why = this.setupError ?? (this.stderrTail.split('\n').filter((l) => l.startsWith('bwrap:')).pop()?.trim() || 'the session sandbox ended');
        this.emit('failed', new Error(why));
        for (const rec of this.jobs.values())
          rec.finish({ code: null, signal: 9, timedOut: rec.timedOut, execErrno: 0, setupError: why, layers: this.layers, violations: rec.violations, usage: null, limits: null, durationMs: performance.now() - rec.started });
        this.jobs.clear();
        resolveExit();
      }));
    });
    const sendPlan = () =>
      this.child.send(
        encodePlan({ mode: 'session', noPidNamespace: reduced, env: plan.env, cwd: plan.cwd, rlimits: plan.rlimits, landlock: plan.landlock, seccomp: plan.seccomp, listeners: plan.listeners }),
        () => undefined,
      );
    if (!this.cgroup) sendPlan();
    else joinSandboxCgroup(this.child, this.cgroup, reduced, sendPlan, (e) => (this.setupError ??= `cannot apply resource limits: ${e.message}`));
  }

  /** Resolves when the sandbox is set up (rejects with the reason when it could not be). */
  ready(): Promise<LayerState> {
    return this.readyOnce;
  }

  get pid(): number | undefined {
    return this.child.pid;
  }

  private onEvent(msg: LauncherEvent, handle: unknown): void {
    switch (msg.e) {
      case 'ready':
        this.layers = { landlockAbi: msg.landlock, seccomp: msg.seccomp, noNewPrivs: msg.noNewPrivs };
        this.emit('ready', this.layers);
        break;
      case 'error':
        this.setupError = `sandbox setup failed: ${msg.msg}${msg.errno ? ` (${errnoName(msg.errno)})` : ''}`;
        break;
      case 'listener':
        this.emit('listener', msg.id, handle);
        break;
      case 'stdio': {
        const rec = this.jobs.get(msg.job);
        if (!rec) {
          (handle as { close?: () => void })?.close?.();
          break;
        }
        // A raw pipe handle: wrap it for the direction it serves.
        rec.streams.set(msg.fd, new net.Socket({ handle, readable: msg.fd !== 0, writable: msg.fd === 0 } as net.SocketConstructorOpts));
        for (const w of rec.streamWaiters) w(msg.fd);
        break;
      }
      case 'violation': {
        const rec = this.jobs.get(msg.job);
        const v: RawViolation = msg.kind === 'write' ? { kind: 'write', nr: msg.nr, path: msg.path } : { kind: 'syscall', nr: msg.nr, arg0: msg.arg0, arg1: msg.arg1 };
        if (rec) rec.violations.push(v);
        break;
      }
      case 'exit': {
        const rec = this.jobs.get(msg.job);
        if (!rec) break;
        this.jobs.delete(msg.job);
        for (const t of rec.timers) clearTimeout(t);
        const before = this.usageAtStart.get(msg.job);
        this.usageAtStart.delete(msg.job);
        const now = this.cgroup?.readUsage() ?? null;
        const delta = now && before ? { ...now, oomKills: (now.oomKills ?? 0) - (before.oomKills ?? 0), pidsRefused: (now.pidsRefused ?? 0) - (before.pidsRefused ?? 0) } : now;
        const rusage = { userMs: msg.userUs / 1000, sysMs: msg.sysUs / 1000, maxRssKb: msg.maxRssKb };
        rec.finish({
          code: msg.code,
          signal: msg.signal,
          timedOut: rec.timedOut,
          execErrno: msg.execErrno,
          setupError: null,
          layers: this.layers,
          violations: rec.violations,
          usage: rusage,
          limits: this.plan.limits ? reportLimits(this.plan.limits, { code: msg.code, signal: msg.signal, timedOut: rec.timedOut, rusage }, delta) : null,
          durationMs: performance.now() - rec.started,
        });
        break;
      }
    }
  }

  private send(frame: { c: string }): void {
    if (!this.closed && this.child.connected) this.child.send(frame, () => undefined);
  }

  /** Starts a command in the session; its stdio arrive as pipes. */
  async start(opts: SessionJobOptions): Promise<SessionJob> {
    if (this.closed) throw new Error('the session is closed');
    await this.readyOnce;
    const id = this.nextJob++;
    let finish!: (o: LinuxOutcome) => void;
    const exited = new Promise<LinuxOutcome>((r) => (finish = r));
    const wanted = opts.pty ? [] : [...(opts.stdin === 'null' ? [] : [0]), 1, 2, ...(opts.statePipe ? [3] : [])];
    const rec: JobRecord = { job: null as unknown as SessionJob, started: performance.now(), streams: new Map(), streamWaiters: [], violations: [], timedOut: false, timers: [], finish };
    const session = this;
    const job: SessionJob = {
      id,
      stdin: null,
      stdout: null,
      stderr: null,
      state: null,
      exited,
      signal: (signo) => session.send(encodeSignal(id, signo)),
      resize: (rows, cols) => session.send(encodeResize(id, rows, cols)),
      terminate: () => {
        rec.timedOut ||= false;
        session.send(encodeSignal(id, 15));
        rec.timers.push(setTimeout(() => session.send(encodeSignal(id, 9)), opts.killGraceMs ?? 2000));
      },
    };
    rec.job = job;
    this.jobs.set(id, rec);
    if (this.cgroup) this.usageAtStart.set(id, this.cgroup.readUsage());
    const streamsReady = new Promise<void>((resolveStreams) => {
      const check = () => {
        if (wanted.every((fd) => rec.streams.has(fd))) resolveStreams();
      };
      rec.streamWaiters.push(check);
      check();
      // A command that fails to start reports its exit before (or instead of) its pipes.
      void exited.then(() => resolveStreams());
    });
    this.send(
      encodeExec({
        job: id,
        argv: opts.argv,
        env: opts.env,
        cwd: opts.cwd,
        pty: opts.pty,
        stdio: opts.pty ? ['inherit', 'inherit', 'inherit'] : [opts.stdin === 'null' ? 'null' : 'pipe', 'pipe', 'pipe'],
        statePipe: opts.statePipe,
      }),
    );
    await streamsReady;
    job.stdin = (rec.streams.get(0) as Writable) ?? null;
    job.stdout = (rec.streams.get(1) as Readable) ?? null;
    job.stderr = (rec.streams.get(2) as Readable) ?? null;
    job.state = (rec.streams.get(3) as Readable) ?? null;
    if (opts.timeoutMs) {
      rec.timers.push(
        setTimeout(() => {
          rec.timedOut = true;
          job.terminate();
        }, opts.timeoutMs),
      );
    }
    return job;
  }

  /** Ends everything in the session: SIGTERM, then SIGKILL after the grace period. */
  async close(graceMs = 200): Promise<void> {
    if (!this.closed) {
      this.send(encodeKillAll(15));
      const kill = setTimeout(() => this.send(encodeShutdown()), graceMs);
      const hard = setTimeout(() => this.child.kill('SIGKILL'), graceMs + 2000);
      await this.exitedOnce;
      clearTimeout(kill);
      clearTimeout(hard);
    }
  }
}
