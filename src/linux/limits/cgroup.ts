// The thin layer that carries out the cgroup part of a LimitsPlan: creates the sandbox's cgroup
// (`<base>/cordon/cordon-<pid>-<n>` in every hierarchy the plan uses), writes the limits, moves a
// process in, reads what the sandbox used, and removes the cgroup after killing whatever is still
// in it. Cgroups whose owning cordon process is dead are swept on the first use in a process.
// Nothing is decided here: which files to write comes from the plan.
import { accessSync, constants, mkdirSync, readFileSync, readdirSync, rmdirSync, writeFileSync } from 'node:fs';
import type { Controller } from './detect.js';
import type { CgroupDirPlan, LimitsPlan } from './plan.js';

/** The directory under each base that holds cordon's sandbox cgroups. */
export const PARENT_NAME = 'cordon';
const NAME_PATTERN = /^cordon-(\d+)-(\d+)$/;

/** What the sandbox used, from the kernel's cgroup counters (null: not counted on this host). */
export interface CgroupUsage {
  /** Highest memory charge of the whole sandbox (process memory, page cache, tmpfs). */
  peakMemoryBytes: number | null;
  /** Processes the OOM killer ended because the sandbox reached its memory limit. */
  oomKills: number | null;
  /** fork/clone calls refused because the sandbox reached its process limit. */
  pidsRefused: number | null;
  /** Most processes and threads alive at once. */
  peakPids: number | null;
  cpuMs: number | null;
  /** Time the sandbox was held back by its CPU quota, and in how many periods. */
  cpuThrottledMs: number | null;
  throttledPeriods: number | null;
}

interface SandboxDir {
  version: 1 | 2;
  path: string;
  controllers: Controller[];
}

let counter = 0;
let sweptThisProcess = false;
/** Cgroups this process created and has not removed: never swept, even though the owner pid is ours. */
const created = new Set<string>();

function errCode(e: unknown): string {
  return (e as NodeJS.ErrnoException).code ?? (e as Error).message;
}

function fileExists(path: string): boolean {
  try {
    accessSync(path, constants.F_OK);
    return true;
  } catch {
    return false;
  }
}

function readText(path: string): string | null {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return null;
  }
}

/** `key value` lines (memory.events, pids.events, cpu.stat, memory.oom_control) → map. */
export function parseKeyedCounters(text: string | null): Map<string, number> {
  const out = new Map<string, number>();
  for (const line of (text ?? '').split('\n')) {
    const [k, v] = line.trim().split(/\s+/);
    if (k && v !== undefined && /^\d+$/.test(v)) out.set(k, Number(v));
  }
  return out;
}

function readNumber(path: string): number | null {
  const t = readText(path)?.trim();
  return t && /^\d+$/.test(t) ? Number(t) : null;
}

function sleepSync(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

function writeControl(path: string, value: string): void {
  writeFileSync(path, value);
}

function mkdirFresh(path: string): void {
  mkdirSync(path); // EEXIST is the caller's business: the name is taken
}

function mkdirExisting(path: string): void {
  try {
    mkdirSync(path);
  } catch (e) {
    if (errCode(e) !== 'EEXIST') throw e;
  }
}

function tryRmdir(path: string): boolean {
  try {
    rmdirSync(path);
    return true;
  } catch (e) {
    return errCode(e) === 'ENOENT';
  }
}

class CgroupSetupError extends Error {
  constructor(
    message: string,
    readonly code: string,
  ) {
    super(message);
  }
}

function createDir(plan: CgroupDirPlan, name: string): SandboxDir {
  const parent = `${plan.base}/${PARENT_NAME}`;
  const path = `${parent}/${name}`;
  const step = (what: string, fn: () => void) => {
    try {
      fn();
    } catch (e) {
      const code = errCode(e);
      throw new CgroupSetupError(`cannot ${what}: ${code}${code === 'EACCES' || code === 'EPERM' ? ' (run `cordon doctor` to see which limits this user can enforce)' : ''}`, code);
    }
  };
  step(`create cgroup ${parent}`, () => mkdirExisting(parent));
  if (plan.version === 2 && plan.controllers.length > 0) {
    const enable = (cs: Controller[]) => cs.map((c) => `+${c}`).join(' ');
    if (plan.enableAtBase.length > 0) step(`enable ${plan.enableAtBase.join(', ')} in ${plan.base}/cgroup.subtree_control`, () => writeControl(`${plan.base}/cgroup.subtree_control`, enable(plan.enableAtBase)));
    step(`enable ${plan.controllers.join(', ')} in ${parent}/cgroup.subtree_control`, () => writeControl(`${parent}/cgroup.subtree_control`, enable(plan.controllers)));
  }
  step(`create cgroup ${path}`, () => mkdirFresh(path));
  created.add(path);
  try {
    for (const w of plan.writes) {
      try {
        writeControl(`${path}/${w.file}`, w.value);
      } catch (e) {
        if (w.optional && errCode(e) === 'ENOENT') continue;
        const code = errCode(e);
        throw new CgroupSetupError(`cannot set ${w.file} to ${w.value} in ${path}: ${code}`, code);
      }
    }
  } catch (e) {
    created.delete(path);
    tryRmdir(path);
    throw e;
  }
  return { version: plan.version, path, controllers: plan.controllers };
}

/** Counters of `now` since `before` (events and CPU), peak as measured in `now`. */
export function usageSince(before: CgroupUsage, now: CgroupUsage): CgroupUsage {
  const minus = (a: number | null, b: number | null) => (a === null ? null : a - (b ?? 0));
  return {
    ...now,
    oomKills: minus(now.oomKills, before.oomKills),
    pidsRefused: minus(now.pidsRefused, before.pidsRefused),
    cpuMs: minus(now.cpuMs, before.cpuMs),
    cpuThrottledMs: minus(now.cpuThrottledMs, before.cpuThrottledMs),
    throttledPeriods: minus(now.throttledPeriods, before.throttledPeriods),
  };
}

/** A sandbox's cgroup, one directory per hierarchy the plan uses. */
export class SandboxCgroup {
  private removed = false;

  private constructor(
    /** `cordon-<owner pid>-<n>`, the same in every hierarchy. */
    readonly name: string,
    readonly dirs: readonly SandboxDir[],
  ) {}

  /**
   * Creates the cgroup a plan asks for, with its limits written; null when the plan uses no cgroup.
   * The first call in a process first sweeps cgroups left behind by dead cordon processes.
   */
  static create(plan: Pick<LimitsPlan, 'cgroups'>, opts: { sweep?: boolean } = {}): SandboxCgroup | null {
    if (plan.cgroups.length === 0) return null;
    if (opts.sweep !== false && !sweptThisProcess) {
      sweptThisProcess = true;
      sweepStaleCgroups(plan);
    }
    for (let attempt = 0; ; attempt++) {
      const name = `cordon-${process.pid}-${++counter}`;
      const dirs: SandboxDir[] = [];
      try {
        for (const c of plan.cgroups) dirs.push(createDir(c, name));
        return new SandboxCgroup(name, dirs);
      } catch (e) {
        for (const d of dirs.reverse()) {
          created.delete(d.path);
          tryRmdir(d.path);
        }
        // EEXIST: a stale cgroup holds the name; ENOENT: another cordon removed the empty parent
        // between our mkdirs. Both are races worth one more try.
        const code = e instanceof CgroupSetupError ? e.code : errCode(e);
        if ((code === 'EEXIST' || code === 'ENOENT') && attempt < 4) continue;
        throw e instanceof CgroupSetupError ? e : new Error(`cannot create the sandbox cgroup: ${code}`);
      }
    }
  }

  /** Moves a process (and, in v1, all its threads) into the sandbox's cgroup in every hierarchy. */
  addProcess(pid: number): void {
    for (const d of this.dirs) {
      try {
        writeControl(`${d.path}/cgroup.procs`, String(pid));
      } catch (e) {
        throw new Error(`cannot move process ${pid} into cgroup ${d.path}: ${errCode(e)}`);
      }
    }
  }

  /** Processes currently in the cgroup (any hierarchy), as host pids. */
  processes(): number[] {
    return processesIn(this.dirs.map((d) => d.path));
  }

  /** Reads what the sandbox used so far. Call it before remove(). */
  readUsage(): CgroupUsage {
    const u: CgroupUsage = { peakMemoryBytes: null, oomKills: null, pidsRefused: null, peakPids: null, cpuMs: null, cpuThrottledMs: null, throttledPeriods: null };
    const set = <K extends keyof CgroupUsage>(k: K, v: number | null | undefined) => {
      if (u[k] === null && v !== null && v !== undefined) u[k] = v;
    };
    for (const d of this.dirs) {
      const p = d.path;
      if (d.version === 2) {
        if (d.controllers.includes('memory')) {
          set('peakMemoryBytes', readNumber(`${p}/memory.peak`));
          set('oomKills', parseKeyedCounters(readText(`${p}/memory.events`)).get('oom_kill'));
        }
        if (d.controllers.includes('pids')) {
          set('peakPids', readNumber(`${p}/pids.peak`));
          set('pidsRefused', parseKeyedCounters(readText(`${p}/pids.events`)).get('max'));
        }
        // cpu.stat's usage is kept for every v2 cgroup; throttling only with the cpu controller.
        const stat = parseKeyedCounters(readText(`${p}/cpu.stat`));
        const usec = stat.get('usage_usec');
        set('cpuMs', usec === undefined ? null : usec / 1000);
        if (d.controllers.includes('cpu')) {
          const t = stat.get('throttled_usec');
          set('cpuThrottledMs', t === undefined ? null : t / 1000);
          set('throttledPeriods', stat.get('nr_throttled'));
        }
      } else {
        if (d.controllers.includes('memory')) {
          set('peakMemoryBytes', readNumber(`${p}/memory.memsw.max_usage_in_bytes`) ?? readNumber(`${p}/memory.max_usage_in_bytes`));
          set('oomKills', parseKeyedCounters(readText(`${p}/memory.oom_control`)).get('oom_kill'));
        }
        if (d.controllers.includes('pids')) {
          set('peakPids', readNumber(`${p}/pids.peak`));
          set('pidsRefused', parseKeyedCounters(readText(`${p}/pids.events`)).get('max'));
        }
        if (d.controllers.includes('cpuacct')) {
          const ns = readNumber(`${p}/cpuacct.usage`);
          set('cpuMs', ns === null ? null : ns / 1e6);
        }
        if (d.controllers.includes('cpu')) {
          const stat = parseKeyedCounters(readText(`${p}/cpu.stat`));
          const ns = stat.get('throttled_time');
          set('cpuThrottledMs', ns === undefined ? null : ns / 1e6);
          set('throttledPeriods', stat.get('nr_throttled'));
        }
      }
    }
    return u;
  }

  /**
   * Starts a new peak-memory measurement (v1 lets the high-water mark be reset; v2's memory.peak
   * cannot be, so there the peak stays the cgroup's since creation).
   */
  resetPeak(): void {
    for (const d of this.dirs) {
      if (d.version !== 1 || !d.controllers.includes('memory')) continue;
      for (const f of ['memory.max_usage_in_bytes', 'memory.memsw.max_usage_in_bytes']) {
        try {
          writeControl(`${d.path}/${f}`, '0');
        } catch {
          // swap accounting off: that file does not exist
        }
      }
    }
  }

  /** SIGKILLs everything in the cgroup and waits (bounded) until it is empty. */
  async kill(timeoutMs = 5000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const left = killRound(this.dirs);
      if (left.length === 0) return;
      if (Date.now() > deadline) throw new Error(`processes ${left.join(', ')} in cgroup ${this.name} survived SIGKILL for ${timeoutMs} ms`);
      await sleep(5);
    }
  }

  /** Kills what is left, removes the cgroup in every hierarchy (and the parent when it is empty). */
  async remove(timeoutMs = 5000): Promise<void> {
    if (this.removed) return;
    await this.kill(timeoutMs);
    const deadline = Date.now() + timeoutMs;
    for (const d of this.dirs) {
      // An exited process keeps its cgroup busy until it has been reaped.
      while (!tryRmdir(d.path)) {
        if (Date.now() > deadline) throw new Error(`cannot remove cgroup ${d.path}: still busy after ${timeoutMs} ms`);
        killRound([d]);
        await sleep(5);
      }
      created.delete(d.path);
      tryRmdir(d.path.slice(0, d.path.lastIndexOf('/'))); // fails while other sandboxes use it
    }
    this.removed = true;
  }

  /** remove() for places that cannot wait (a process 'exit' handler); blocks up to timeoutMs. */
  removeSync(timeoutMs = 2000): void {
    if (this.removed) return;
    removeDirsSync(this.dirs, timeoutMs);
    for (const d of this.dirs) created.delete(d.path);
    this.removed = true;
  }
}

function processesIn(paths: string[]): number[] {
  const pids = new Set<number>();
  for (const p of paths) {
    for (const line of (readText(`${p}/cgroup.procs`) ?? '').split('\n')) if (line) pids.add(Number(line));
  }
  return [...pids];
}

/** One round of killing: cgroup.kill where the kernel has it, SIGKILL to each other member. */
function killRound(dirs: readonly Pick<SandboxDir, 'path' | 'version'>[]): number[] {
  const left = processesIn(dirs.map((d) => d.path));
  if (left.length === 0) return left;
  let killedByCgroup = new Set<number>();
  const v2 = dirs.find((d) => d.version === 2 && fileExists(`${d.path}/cgroup.kill`));
  if (v2) {
    const members = processesIn([v2.path]);
    try {
      // Atomic: also catches children forked while the kill is under way.
      writeControl(`${v2.path}/cgroup.kill`, '1');
      killedByCgroup = new Set(members);
    } catch {
      // signal them one by one below
    }
  }
  for (const pid of left) {
    if (killedByCgroup.has(pid)) continue;
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // already gone
    }
  }
  return left;
}

function removeDirsSync(dirs: readonly Pick<SandboxDir, 'path' | 'version'>[], timeoutMs: number): void {
  const deadline = Date.now() + timeoutMs;
  for (const d of dirs) {
    while (!tryRmdir(d.path)) {
      if (Date.now() > deadline) throw new Error(`cannot remove cgroup ${d.path}: still busy after ${timeoutMs} ms`);
      killRound([d]);
      sleepSync(5);
    }
    tryRmdir(d.path.slice(0, d.path.lastIndexOf('/')));
  }
}

/** A process that is gone or a zombie cannot be using its cgroups any more. */
function ownerAlive(pid: number): boolean {
  const stat = readText(`/proc/${pid}/stat`);
  if (stat === null) return false;
  const state = stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
  return state !== 'Z' && state !== 'X';
}

/**
 * Removes sandbox cgroups whose owning cordon process is dead (killed before it could clean up),
 * killing anything still in them first. Returns the directories removed. Bounded: gives up on a
 * cgroup that will not empty within timeoutMs and moves on.
 */
export function sweepStaleCgroups(plan: Pick<LimitsPlan, 'cgroups'>, timeoutMs = 2000): string[] {
  const removed: string[] = [];
  for (const c of plan.cgroups) {
    const parent = `${c.base}/${PARENT_NAME}`;
    let entries: string[];
    try {
      entries = readdirSync(parent);
    } catch {
      continue;
    }
    for (const entry of entries) {
      const m = NAME_PATTERN.exec(entry);
      if (!m) continue;
      const path = `${parent}/${entry}`;
      const owner = Number(m[1]);
      if (created.has(path)) continue;
      // Our own pid on a cgroup we did not create: a dead cordon had our pid before us.
      if (owner !== process.pid && ownerAlive(owner)) continue;
      try {
        removeDirsSync([{ path, version: c.version }], timeoutMs);
        removed.push(path);
      } catch {
        // left for the next sweep; it does not stop this sandbox from starting
      }
    }
  }
  return removed;
}
