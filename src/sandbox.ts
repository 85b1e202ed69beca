// The public API: create a sandbox from a policy, run or spawn commands in it, close it.
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { lookup } from 'node:dns/promises';
import { homedir, tmpdir, totalmem } from 'node:os';
import { join } from 'node:path';
import { LayerUnavailableError, PolicyError } from './policy/errors.js';
import { loadPolicy, type LoadedPolicy } from './policy/load.js';
import { resolvePolicy } from './policy/resolve.js';
import type { PolicyInput, ResolvedPolicy } from './policy/types.js';
import { hostFacts, sweepOrphanedSandboxes, userNamespaces, type LinuxHostFacts } from './linux/host.js';
import { compileLinuxPlan, compileReducedPlan, type LayerReport, type LinuxPlan, type LinuxPlanOptions } from './linux/plan.js';
import { LinuxSandboxProcess } from './linux/run.js';
import { trace } from './trace.js';
import { kernelHasNotify, seccompPlanFor } from './linux/seccomp-plan.js';
import { LinuxSession } from './linux/session.js';
import { planNetworkBridge } from './network/bridge-plan.js';
import { EgressProxy } from './network/proxy.js';
import { parseDomainPattern } from './network/rules.js';
import { LISTENER } from './linux/plan.js';
import type { Violation } from './policy/explain.js';
import { detectCgroupFacts, planLimits, SandboxCgroup } from './linux/limits/index.js';
import { Session } from './session.js';
export { Session } from './session.js';

export type { Violation } from './policy/explain.js';
export type { SpawnOptions, RunOptions, CommandResult, RunResult, SandboxedCommand } from './result.js';
import { collectOutput, createdNotices, networkViolations, toResult, type RunOptions, type RunResult, type SandboxedCommand, type SpawnOptions } from './result.js';
export type { LayerReport } from './linux/plan.js';

export interface SandboxOptions {
  /** A policy object; merged over the user's config file (unless `userConfig: null`). */
  policy?: PolicyInput;
  /** A policy file (JSON), like `cordon run --policy FILE`. */
  policyFile?: string;
  /** The user config file to read; `null` ignores it. Default: `$XDG_CONFIG_HOME/cordon/config.json`. */
  userConfig?: string | null;
  /** Policy layered above everything else (the CLI's flags). */
  overrides?: PolicyInput;
  /** The directory commands start in and the default workspace. Default: `process.cwd()`. */
  cwd?: string;
  /** The host environment commands inherit from (before scrubbing). Default: `process.env`. */
  env?: Record<string, string | undefined>;
  /** Report denied writes (path and rule); costs a round trip per write-intent syscall. Default true. */
  reportWrites?: boolean;
  /** Internal: hooks for tests of the layers themselves. Never set in normal use. */
  unsafeTestHooks?: Pick<LinuxPlanOptions, 'landlock' | 'unsafeExtraWritableBinds'> & {
    /** Names the proxy resolves without DNS (tests play "allowed.test" against loopback servers). */
    hosts?: Record<string, string[]>;
    /** Measure the layers' cost: no seccomp filter, or one without user-notification reporting. */
    seccomp?: 'off' | 'errno';
  };
}

/** Turns a setup failure into a message with the fix. */
export function explainSetupError(message: string): string {
  if (/setting up uid map|creating new namespace|No permissions to creat|Operation not permitted.*namespace|RTM_NEWADDR/i.test(message))
    return `${message} — unprivileged user namespaces are not available here. On Ubuntu 23.10+ load an AppArmor profile for bwrap (see \`cordon doctor\`), or run with --allow-reduced to accept the weaker Landlock + seccomp tier`;
  if (/Landlock is required/.test(message)) return `${message} — this kernel has no Landlock (needs Linux 5.13+ with landlock in the lsm= list); pass --allow-reduced to run without it`;
  return message;
}

export class Sandbox {
  private running = new Set<LinuxSandboxProcess>();
  private sessions = new Set<Session>();
  private closed = false;
  /** The plan compiled by create() has not been used yet (saves a second resolve for one-shot use). */
  private fresh = true;
  /**
   * One cgroup for the sandbox's one-shot commands, made at the first command and reused: creating
   * and removing one per command costs more than the rest of cordon's work. Limits therefore hold
   * for commands running at the same time together.
   */
  private cgroup: SandboxCgroup | null | undefined;
  private removeCgroupAtExit = () => this.cgroup?.removeSync();
  /**
   * A sandbox started ahead of the next run() with the current plan, waiting for its command: most
   * of a sandbox's start-up then happens while the caller is busy elsewhere. Used only if the plan
   * compiled for that command is identical (otherwise it is discarded).
   */
  private warm: { proc: LinuxSandboxProcess; fingerprint: string } | null = null;
  private get proxyHosts(): Record<string, string[]> | undefined {
    return proxyHosts(this.opts.env ?? process.env, this.opts.unsafeTestHooks?.hosts);
  }

  private constructor(
    private readonly loaded: LoadedPolicy,
    private readonly opts: SandboxOptions,
    private current: { policy: ResolvedPolicy; plan: LinuxPlan },
    private readonly host: LinuxHostFacts,
    /** full: namespaces + mount view + Landlock + seccomp; reduced: Landlock + seccomp only. */
    readonly tier: 'full' | 'reduced',
  ) {}

  static async create(opts: SandboxOptions = {}): Promise<Sandbox> {
    if (process.platform !== 'linux')
      throw new LayerUnavailableError(`cordon enforces policies on Linux only for now (this is ${process.platform}); the Windows and macOS backends are verified against models, not yet on the real OS`);
    const env = opts.env ?? process.env;
    const home = env.HOME || homedir();
    const loaded = loadPolicy({ library: opts.policy, flags: opts.overrides, policyFile: opts.policyFile, userConfig: opts.userConfig, env, home, validatePattern: parseDomainPattern });
    trace('policy loaded');
    const host = hostFacts();
    trace('host facts');
    if (!swept) {
      swept = true;
      sweepOrphanedSandboxes(host.launcher);
    }
    if (!host.launcher) throw new LayerUnavailableError("cordon's launcher is not built (no C compiler during npm install?); install gcc, run `npm rebuild cordon`, then `cordon doctor`");
    // Never a silent downgrade: the reduced tier only when the policy accepts it.
    const userns = host.bwrap ? userNamespaces(env, host.bwrap) : { available: false, reason: 'bubblewrap is not installed (Debian/Ubuntu: apt-get install bubblewrap)' };
    let tier: 'full' | 'reduced' = 'full';
    if (!userns.available) {
      if (!loaded.input.allowReduced)
        throw new LayerUnavailableError(`${userns.reason}: the full sandbox needs it (see \`cordon doctor\` for the fix), or pass --allow-reduced to accept the weaker Landlock + seccomp tier`);
      tier = 'reduced';
      sweepStaleTmpDirs();
    }
    const compiled = Sandbox.compile(loaded, opts, host, tier);
    trace('plan compiled');
    return new Sandbox(loaded, opts, compiled, host, tier);
  }

  private static compile(loaded: LoadedPolicy, opts: SandboxOptions, host: LinuxHostFacts, tier: 'full' | 'reduced'): { policy: ResolvedPolicy; plan: LinuxPlan } {
    const env = opts.env ?? process.env;
    const home = env.HOME || homedir();
    const { policy } = resolvePolicy(loaded.input, {
      cwd: opts.cwd ?? process.cwd(),
      home,
      env,
      totalMemoryBytes: totalmem(),
      policyFile: loaded.policyFile,
      userConfigFile: loaded.userConfigFile,
      sources: loaded.sources,
      cacheDir: join(env.XDG_CACHE_HOME || join(home, '.cache'), 'cordon'),
    });
    const hook = opts.unsafeTestHooks?.seccomp;
    const seccomp =
      host.arch === 'other' || hook === 'off'
        ? null
        : seccompPlanFor(policy, { arch: host.arch, report: hook !== 'errno' && kernelHasNotify(), observeWrites: opts.reportWrites ?? true, noNetworkNamespace: tier === 'reduced' });
    if (!seccomp && !policy.allowReduced && hook !== 'off')
      throw new LayerUnavailableError(`cordon has no seccomp filter for this CPU architecture (${process.arch}); pass --allow-reduced to run without it`);
    const limits = planLimits(policy.limits, detectCgroupFacts(), { memoryCgroup: loaded.input.limits?.memory !== undefined });
    if (tier === 'reduced') {
      if (policy.network.mode === 'allow-list')
        throw new LayerUnavailableError('the network allow-list needs a network namespace, which the reduced tier does not have; use --network off or full, or fix user namespaces (`cordon doctor`)');
      const tmpDir = mkdtempSync(join(tmpdir(), `cordon-${process.pid}-`));
      return { policy, plan: compileReducedPlan(policy, host, { tmpDir, seccomp, limits }) };
    }
    const bridge = policy.network.mode === 'allow-list' ? planNetworkBridge(policy.network) : null;
    const plan = compileLinuxPlan(policy, host, { landlock: opts.unsafeTestHooks?.landlock, unsafeExtraWritableBinds: opts.unsafeTestHooks?.unsafeExtraWritableBinds, seccomp, limits, bridge });
    return { policy, plan };
  }

  /** The effective policy (paths canonical, defaults applied). */
  get policy(): ResolvedPolicy {
    return this.current.policy;
  }

  /** Which layers this sandbox applies, and how. */
  explain(): LayerReport[] {
    return this.current.plan.layers;
  }

  /** The bubblewrap arguments of the current plan (for `--explain` and debugging). */
  get bwrapArgs(): string[] {
    return this.current.plan.bwrapArgs;
  }

  /** Starts a command; stream its stdio. */
  spawn(argv: string[], opts: SpawnOptions = {}): SandboxedCommand {
    return this.start(argv, opts, false);
  }

  private start(argv: string[], opts: SpawnOptions, pooled: boolean): SandboxedCommand {
    if (this.closed) throw new Error('this sandbox is closed');
    if (!argv.length || !argv[0]) throw new PolicyError('no command given; pass the command and its arguments');
    // Re-resolve per command: new nested repositories, host sockets and git dirs are picked up.
    if (!this.fresh) this.current = Sandbox.compile(this.loaded, this.opts, { ...this.host, hostSockets: hostFacts().hostSockets }, this.tier);
    this.fresh = false;
    const { policy, plan } = this.current;
    const before = new Set(plan.watchCreated.filter((p) => existsSync(p)));
    if (this.cgroup === undefined) {
      this.cgroup = plan.limits ? SandboxCgroup.create(plan.limits) : null;
      if (this.cgroup) process.once('exit', this.removeCgroupAtExit);
    }
    const timeoutMs = opts.timeoutMs === undefined ? policy.limits.timeoutMs : opts.timeoutMs;
    const warm = pooled ? this.takeWarm(plan) : null;
    let proc: LinuxSandboxProcess;
    if (warm) {
      proc = warm;
      proc.begin({ argv, env: opts.env, timeoutMs });
    } else {
      proc = new LinuxSandboxProcess({
        cgroup: this.cgroup,
        plan: opts.env ? { ...plan, env: { ...plan.env, ...opts.env } } : plan,
        host: this.host,
        argv,
        stdio: opts.stdio ?? ['pipe', 'pipe', 'pipe'],
        pty: opts.pty,
        timeoutMs,
      });
    }
    this.running.add(proc);
    const home = this.opts.env?.HOME ?? process.env.HOME ?? homedir();
    const proxy = plan.listeners.length ? attachProxy(proc, policy, this.proxyHosts) : null;
    const result = proc.exited.then(async (o) => {
      this.running.delete(proc);
      const denials = proxy ? await closeProxy(proxy) : [];
      if (pooled && !this.closed) setImmediate(() => this.prewarm());
      if (o.setupError) throw new LayerUnavailableError(`cordon: ${explainSetupError(o.setupError)}`);
      const r = toResult(o, policy, plan, home, createdNotices(plan.watchCreated, before));
      r.violations.push(...denials);
      return r;
    });
    return {
      stdin: proc.stdin,
      stdout: proc.stdout,
      stderr: proc.stderr,
      result,
      signal: (s) => proc.signal(s),
      resize: (r, c) => proc.resize(r, c),
      terminate: () => proc.terminate(),
    };
  }

  /** The plan's identity: a warm sandbox is used only for a command with the very same plan. */
  private static fingerprint(plan: LinuxPlan): string {
    return JSON.stringify({ ...plan, layers: undefined, limits: undefined, seccomp: plan.seccomp ? { ...plan.seccomp, names: undefined, program: plan.seccomp.program.toString('base64') } : null }, (_k, v) => (typeof v === 'bigint' ? v.toString() : v));
  }

  private takeWarm(plan: LinuxPlan): LinuxSandboxProcess | null {
    const w = this.warm;
    this.warm = null;
    if (!w) return null;
    if (w.proc.alive && w.fingerprint === Sandbox.fingerprint(plan)) return w.proc;
    w.proc.kill();
    return null;
  }

  /** Starts the next run()'s sandbox now, with the current plan. */
  private prewarm(): void {
    if (this.warm || this.closed) return;
    try {
      const { plan } = this.current;
      if (this.cgroup === undefined) return;
      const proc = new LinuxSandboxProcess({ cgroup: this.cgroup, plan, host: this.host, stdio: ['ignore', 'pipe', 'pipe'] });
      this.warm = { proc, fingerprint: Sandbox.fingerprint(plan) };
      void proc.exited.then(() => {
        if (this.warm?.proc === proc) this.warm = null;
      });
    } catch {
      this.warm = null; // the next run() starts cold and reports any problem itself
    }
  }

  /** Runs a command to completion and captures its output. */
  async run(argv: string[], opts: RunOptions = {}): Promise<RunResult> {
    const pooled = opts.input === undefined;
    const cmd = this.start(argv, { timeoutMs: opts.timeoutMs, env: opts.env, stdio: [pooled ? 'ignore' : 'pipe', 'pipe', 'pipe'] }, pooled);
    if (opts.input !== undefined) {
      cmd.stdin!.on('error', () => undefined); // the command may exit without reading
      cmd.stdin!.end(opts.input);
    }
    const { result, stdout, stderr } = await collectOutput(cmd, opts.maxOutputBytes ?? 1024 * 1024);
    return { ...result, stdout: stdout.text(), stderr: stderr.text(), cut: { stdout: stdout.cut, stderr: stderr.cut } };
  }

  /**
   * Opens a long-lived sandbox in which many commands run (namespaces, mounts and filters are set
   * up once). `session.exec('cd src && export X=1')` carries the working directory and exported
   * variables over to the next command; background processes live until the session closes.
   */
  async openSession(): Promise<Session> {
    if (this.closed) throw new Error('this sandbox is closed');
    if (!this.fresh) this.current = Sandbox.compile(this.loaded, this.opts, { ...this.host, hostSockets: hostFacts().hostSockets }, this.tier);
    this.fresh = false;
    const { policy, plan } = this.current;
    const linux = new LinuxSession(plan, this.host);
    const proxy = plan.listeners.length ? attachProxy(linux, policy, this.proxyHosts) : null;
    try {
      await linux.ready();
    } catch (e) {
      await proxy?.close();
      throw new LayerUnavailableError(`cordon: ${explainSetupError((e as Error).message)}`);
    }
    const session = new Session(linux, policy, plan, this.opts.env?.HOME ?? process.env.HOME ?? homedir(), proxy);
    this.sessions.add(session);
    session.closed.then(() => this.sessions.delete(session), () => undefined);
    return session;
  }

  /** Ends every command and session still running in this sandbox. */
  async close(): Promise<void> {
    this.closed = true;
    this.warm?.proc.kill();
    if (this.warm) await this.warm.proc.exited;
    this.warm = null;
    const waits: Promise<unknown>[] = [...this.running].map((p) => {
      p.kill();
      return p.exited;
    });
    for (const session of this.sessions) waits.push(session.close());
    await Promise.all(waits);
    process.off('exit', this.removeCgroupAtExit);
    await this.cgroup?.remove().catch(() => undefined);
    this.cgroup = null;
  }
}

/**
 * Names the proxy resolves from a hosts file (CORDON_PROXY_HOSTS, /etc/hosts format) before DNS:
 * for names only this machine knows, and for tests that play real names against local servers.
 * The address guard still judges every address.
 */
function proxyHosts(env: Record<string, string | undefined>, extra?: Record<string, string[]>): Record<string, string[]> | undefined {
  const file = env.CORDON_PROXY_HOSTS;
  if (!file && !extra) return undefined;
  const out: Record<string, string[]> = { ...extra };
  if (file) {
    let text: string;
    try {
      text = readFileSync(file, 'utf8');
    } catch (e) {
      throw new PolicyError(`CORDON_PROXY_HOSTS: cannot read ${file} (${(e as NodeJS.ErrnoException).code}); fix the path or unset it`);
    }
    for (const line of text.split('\n')) {
      const [addr, ...names] = line.replace(/#.*/, '').trim().split(/\s+/);
      if (!addr || !names.length) continue;
      for (const n of names) (out[n.toLowerCase()] ??= []).push(addr);
    }
  }
  return out;
}

/** Serves the listeners the launcher opens inside the sandbox with a proxy for this command. */
export function attachProxy(events: NodeJS.EventEmitter, policy: ResolvedPolicy, hosts?: Record<string, string[]>): EgressProxy {
  const proxy = new EgressProxy({
    allow: policy.network.allow,
    deny: policy.network.deny,
    ...(hosts ? { resolve: async (name: string) => hosts[name.toLowerCase()] ?? (await lookup(name, { all: true, verbatim: true })).map((a) => a.address) } : {}),
  });
  events.on('listener', (id: number, handle: unknown) => {
    if (id === LISTENER.proxy) proxy.serveProxy(handle as never);
    else if (id === LISTENER.dns) proxy.serveDns(handle as never);
    else proxy.serveTransparent(handle as never);
  });
  return proxy;
}

/** Closes a command's proxy and turns what it refused into violations. */
export async function closeProxy(proxy: EgressProxy): Promise<Violation[]> {
  await proxy.close();
  return networkViolations(proxy.denials);
}


/** Removes reduced-tier temp dirs whose cordon process is gone (killed before it could clean up). */
function sweepStaleTmpDirs(): void {
  let names: string[];
  try {
    names = readdirSync(tmpdir());
  } catch {
    return;
  }
  for (const name of names) {
    const m = /^cordon-(\d+)-/.exec(name);
    if (!m || Number(m[1]) === process.pid) continue;
    const path = join(tmpdir(), name);
    try {
      if (statSync(path).uid !== process.getuid?.()) continue;
      process.kill(Number(m[1]), 0);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ESRCH') rmSync(path, { recursive: true, force: true });
    }
  }
}

let swept = false;

/** Creates a sandbox from a policy. */
export function createSandbox(opts: SandboxOptions = {}): Promise<Sandbox> {
  return Sandbox.create(opts);
}
