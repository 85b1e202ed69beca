// A session: one sandbox, many commands, with an agent shell's memory (working directory and
// exported variables carry over between `exec` calls; background processes live on).
import { existsSync } from 'node:fs';
import { findExecutable } from './linux/host.js';
import type { LinuxPlan } from './linux/plan.js';
import type { LinuxSession, SessionJob } from './linux/session.js';
import type { ResolvedPolicy } from './policy/types.js';
import type { EgressProxy } from './network/proxy.js';
import { PolicyError } from './policy/errors.js';
import { collectOutput, createdNotices, networkViolations, toResult, type CommandResult, type RunOptions, type RunResult, type SandboxedCommand } from './result.js';

const STATE_END = 'cordon-state-end';
/**
 * Runs the user's script in the current shell (so `cd` and `export` stick) and, whatever way the
 * script ends, writes the new working directory and environment to fd 3.
 */
const STATE_WRAPPER = `trap '__cordon_s=$?; { printf "%s\\0" "$PWD"; env -0; printf "\\0${STATE_END}\\0"; } >&3 2>/dev/null; exit $__cordon_s' EXIT
eval "$1"`;
/** Shell bookkeeping that must not be replayed into the next command. */
const VOLATILE = new Set(['_', 'SHLVL', 'PWD', 'OLDPWD']);

export interface SessionSpawnOptions {
  timeoutMs?: number | null;
  /** Run on a pseudo-terminal relayed to this process's terminal. */
  pty?: boolean;
  env?: Record<string, string>;
}

export class Session {
  /** Where the next command starts. */
  cwd: string;
  /** The environment the next command starts with. */
  env: Record<string, string>;
  readonly closed: Promise<void>;
  private resolveClosed!: () => void;
  private isClosed = false;
  private readonly shell: string;

  constructor(
    private readonly linux: LinuxSession,
    readonly policy: ResolvedPolicy,
    private readonly plan: LinuxPlan,
    private readonly home: string,
    /** The session's egress proxy (allow-list network), serving every command. */
    private readonly proxy: EgressProxy | null = null,
  ) {
    this.cwd = plan.cwd;
    this.env = { ...plan.env };
    this.shell = findExecutable('bash', plan.env.PATH) ?? '/bin/sh';
    this.closed = new Promise((r) => (this.resolveClosed = r));
  }

  private async start(argv: string[], opts: SessionSpawnOptions & { statePipe?: boolean; stdin?: 'pipe' | 'null' }): Promise<{ job: SessionJob; result: Promise<CommandResult> }> {
    if (this.isClosed) throw new Error('this session is closed');
    if (!argv.length || !argv[0]) throw new PolicyError('no command given; pass the command and its arguments');
    const before = new Set(this.plan.watchCreated.filter((p) => existsSync(p)));
    const job = await this.linux.start({
      argv,
      env: { ...this.env, ...opts.env },
      cwd: this.cwd,
      statePipe: opts.statePipe,
      stdin: opts.stdin,
      pty: opts.pty,
      timeoutMs: opts.timeoutMs === undefined ? this.policy.limits.timeoutMs : opts.timeoutMs,
    });
    const startedAt = Date.now();
    const result = job.exited.then((o) => {
      const notices = createdNotices(this.plan.watchCreated, before);
      if (o.setupError) notices.push(`the session ended: ${o.setupError}`);
      const r = toResult(o, this.policy, this.plan, this.home, notices);
      // What the proxy refused while this command ran (background processes may add to it).
      r.violations.push(...networkViolations(this.proxy?.denials ?? [], startedAt));
      return r;
    });
    return { job, result };
  }

  /** Starts a command (argv, no shell) in the session; stream its stdio. */
  async spawn(argv: string[], opts: SessionSpawnOptions = {}): Promise<SandboxedCommand> {
    const { job, result } = await this.start(argv, opts);
    return {
      stdin: job.stdin,
      stdout: job.stdout,
      stderr: job.stderr,
      result,
      signal: (s) => job.signal(s),
      resize: (r, c) => job.resize(r, c),
      terminate: () => job.terminate(),
    };
  }

  /** Runs a command (argv, no shell) with the session's directory and environment. */
  async run(argv: string[], opts: RunOptions = {}): Promise<RunResult> {
    const { job, result } = await this.start(argv, { timeoutMs: opts.timeoutMs, env: opts.env, stdin: opts.input === undefined ? 'null' : 'pipe' });
    return this.finish({ stdin: job.stdin, stdout: job.stdout, stderr: job.stderr, result }, opts);
  }

  /**
   * Runs a shell script the way an agent's shell would: `cd` and `export` carry over to the next
   * command, and background jobs (`npm run dev &`) keep running until the session closes.
   */
  async exec(script: string, opts: RunOptions = {}): Promise<RunResult> {
    const { job, result } = await this.start([this.shell, '-c', STATE_WRAPPER, 'cordon', script], {
      timeoutMs: opts.timeoutMs,
      env: opts.env,
      statePipe: true,
      stdin: opts.input === undefined ? 'null' : 'pipe',
    });
    const state = readState(job.state);
    const r = await this.finish({ stdin: job.stdin, stdout: job.stdout, stderr: job.stderr, result }, opts);
    // The wrapper writes its state just before the shell exits, so it is already in the pipe; a
    // shell killed by a signal writes nothing, and background processes may hold the pipe open.
    let timer: NodeJS.Timeout | undefined;
    const s = await Promise.race([state, new Promise<null>((r) => (timer = setTimeout(() => r(null), 250)))]);
    clearTimeout(timer);
    job.state?.destroy();
    if (s) {
      this.cwd = s.cwd;
      const env: Record<string, string> = {};
      for (const [k, v] of Object.entries(s.env)) if (!VOLATILE.has(k)) env[k] = v;
      this.env = env;
    }
    return r;
  }

  private async finish(cmd: Pick<SandboxedCommand, 'stdin' | 'stdout' | 'stderr' | 'result'>, opts: RunOptions): Promise<RunResult> {
    if (cmd.stdin) {
      cmd.stdin.on('error', () => undefined);
      cmd.stdin.end(opts.input ?? '');
    }
    const { result, stdout, stderr } = await collectOutput(cmd, opts.maxOutputBytes ?? 1024 * 1024);
    return { ...result, stdout: stdout.text(), stderr: stderr.text(), cut: { stdout: stdout.cut, stderr: stderr.cut } };
  }

  /** Ends every process in the session (SIGTERM, then SIGKILL) and tears the sandbox down. */
  async close(): Promise<void> {
    if (!this.isClosed) {
      this.isClosed = true;
      await this.linux.close();
      await this.proxy?.close();
      this.resolveClosed();
    }
    return this.closed;
  }
}

/** Reads the state blob the wrapper writes at exit: cwd, then NUL-separated NAME=VALUE pairs. */
function readState(stream: NodeJS.ReadableStream | null): Promise<{ cwd: string; env: Record<string, string> } | null> {
  if (!stream) return Promise.resolve(null);
  return new Promise((resolveState) => {
    const chunks: Buffer[] = [];
    let settled = false;
    const settle = (v: { cwd: string; env: Record<string, string> } | null) => {
      if (settled) return;
      settled = true;
      stream.removeAllListeners('data');
      (stream as unknown as { destroy(): void }).destroy(); // background processes may hold the other end
      resolveState(v);
    };
    stream.on('data', (d: Buffer) => {
      chunks.push(d);
      const text = Buffer.concat(chunks).toString('utf8');
      const end = text.indexOf(`\0${STATE_END}\0`);
      if (end < 0) return;
      const parts = text.slice(0, end).split('\0');
      const cwd = parts.shift() ?? '';
      const env: Record<string, string> = {};
      for (const p of parts) {
        const i = p.indexOf('=');
        if (i > 0) env[p.slice(0, i)] = p.slice(i + 1);
      }
      settle(cwd.startsWith('/') ? { cwd, env } : null);
    });
    stream.on('end', () => settle(null));
    stream.on('error', () => settle(null));
  });
}
