// Decides how each resource limit of a policy is enforced on this host — cgroup v2, cgroup v1, an
// rlimit, or not at all — and compiles the cgroup file writes and rlimits that do it. Pure: the
// host's cgroup setup comes in as data (detect.ts); applying the plan is cgroup.ts's job.
import type { ResolvedLimits } from '../../policy/types.js';
import { RLIMIT } from '../launcher-protocol.js';
import type { CgroupFacts, Controller } from './detect.js';

export type Mechanism = 'cgroup-v2' | 'cgroup-v1' | 'rlimit' | 'none';

export interface LimitChoice {
  mechanism: Mechanism;
  /** The limit (bytes, processes or cores); null when the policy sets none. */
  value: number | null;
  /** What the limit counts: the whole sandbox, or each process on its own. */
  scope: 'sandbox' | 'process' | null;
  /** Why this mechanism, in a phrase (for `cordon doctor` and the layer report). */
  note: string;
}

export interface CgroupWrite {
  file: string;
  value: string;
  /** Skip when the kernel lacks the file (e.g. swap accounting disabled). */
  optional?: boolean;
}

/** One cgroup to create per sandbox: in the v2 hierarchy, or in one v1 hierarchy. */
export interface CgroupDirPlan {
  version: 1 | 2;
  /** The sandbox's cgroup is created as `<base>/cordon/cordon-<pid>-<n>`. */
  base: string;
  /** v1: the hierarchy's controllers; v2: the controllers to enable for the sandbox's cgroup. */
  controllers: Controller[];
  /** v2: controllers missing from the base's cgroup.subtree_control, to enable there first. */
  enableAtBase: Controller[];
  /** Written into the sandbox's cgroup, in order, before any process joins it. */
  writes: CgroupWrite[];
}

export interface RlimitRecord {
  resource: number;
  soft: bigint;
  hard: bigint;
}

export interface LimitsPlan {
  memory: LimitChoice;
  pids: LimitChoice;
  cpu: LimitChoice;
  /** Wall-clock limit, enforced by cordon's timer (the same on every host). */
  timeoutMs: number | null;
  cgroups: CgroupDirPlan[];
  /** Set in the command's process before exec (LinuxPlan.rlimits). */
  rlimits: RlimitRecord[];
  /**
   * Size cap for the sandbox's private tmpfs mounts (bwrap `--size` before each `--tmpfs`), or
   * null. Needed only when memory is not a cgroup limit: a cgroup charges tmpfs pages to the
   * writer, RLIMIT_DATA does not see them at all.
   */
  tmpfsBytes: number | null;
  /** Things the user should know about this plan, one line each. */
  warnings: string[];
}

/** The CFS period for CPU quotas: the kernel default, short enough to keep latency smooth. */
export const CPU_PERIOD_US = 100_000;
/** The kernel's smallest CFS quota. */
const CPU_MIN_QUOTA_US = 1_000;

/*
 * Memory without cgroups: RLIMIT_DATA, never RLIMIT_AS. Measured minimums with which everyday
 * tools still succeed (this project's build machine, Node 20):
 *   RLIMIT_DATA: python3 -c pass 4 MiB; gcc hello.c 8 MiB; node -e 0 48 MiB; npm --version
 *     88 MiB; npx tsc -v 116 MiB; the native tsc type-checking this repository 188 MiB.
 *   RLIMIT_AS: node -e 0 712 MiB; tsc 788 MiB; and every WebAssembly.Memory (Node's fetch runs on
 *     one) reserves ~10.7 GiB of guard space, so any RLIMIT_AS below ~11 GiB breaks Node tools.
 * RLIMIT_DATA counts only private writable memory (reserved, inaccessible guard space is free), so
 * it stops an allocating process without breaking them.
 */
/** Below this, warn: Node.js hangs at startup under a smaller RLIMIT_DATA instead of failing (measured: 32 MiB hangs, 48 MiB runs). */
export const RLIMIT_DATA_NODE_MIN_BYTES = 64 << 20;

/**
 * Extra processes allowed by the RLIMIT_NPROC backstop when a cgroup already limits processes:
 * the cgroup (which also counts cordon's launcher) then always refuses first, so the refusal is
 * counted in pids.events and reported, while the rlimit still bounds a command that somehow left
 * the cgroup.
 */
export const NPROC_BACKSTOP_MARGIN = 32;

function usableV2(facts: CgroupFacts, c: Controller): boolean {
  const v2 = facts.v2;
  return !!v2?.base && v2.available.includes(c) && (v2.enabled.includes(c) || v2.canEnable);
}

function writableV1(facts: CgroupFacts, c: Controller) {
  return facts.v1.find((h) => h.writable && h.controllers.includes(c)) ?? null;
}

function cgroupChoice(facts: CgroupFacts, c: Controller): 'cgroup-v2' | 'cgroup-v1' | null {
  if (usableV2(facts, c)) return 'cgroup-v2';
  if (writableV1(facts, c)) return 'cgroup-v1';
  return null;
}

/** Human form of a byte count for messages: `512 MiB`, `17.6 GiB`. */
export function formatBytes(bytes: number): string {
  if (bytes >= 1 << 30) return `${+(bytes / (1 << 30)).toFixed(1)} GiB`;
  if (bytes >= 1 << 20) return `${+(bytes / (1 << 20)).toFixed(1)} MiB`;
  return `${bytes} bytes`;
}

function rlimit(resource: number, value: number): RlimitRecord {
  const v = BigInt(Math.floor(value));
  return { resource, soft: v, hard: v };
}

/** Plans how every limit in `limits` is enforced on a host described by `facts`. */
export interface PlanLimitsOptions {
  /**
   * Use a memory cgroup (whole-sandbox accounting). Moving a process into a cgroup v1 memory
   * controller can wait for an RCU grace period (measured here: up to 10 ms, most often on the
   * first move after a quiet while), which is most of a short command's cost. So cordon uses it
   * for a memory limit the user asked for, and the per-process RLIMIT_DATA for the default one,
   * which only has to stop a runaway allocation. Default true.
   */
  memoryCgroup?: boolean;
}

export function planLimits(limits: ResolvedLimits, facts: CgroupFacts, opts: PlanLimitsOptions = {}): LimitsPlan {
  const warnings: string[] = [];
  const rlimits: RlimitRecord[] = [];
  const v2Writes: CgroupWrite[] = [];
  const v2Controllers: Controller[] = [];
  const v1Writes = new Map<string, CgroupWrite[]>();
  const addV1 = (c: Controller, writes: CgroupWrite[]) => {
    const h = writableV1(facts, c)!;
    v1Writes.set(h.mountPoint, [...(v1Writes.get(h.mountPoint) ?? []), ...writes]);
  };

  // Memory.
  let memory: LimitChoice;
  const bytes = limits.memoryBytes;
  if (bytes === null) {
    memory = { mechanism: 'none', value: null, scope: null, note: 'no memory limit in the policy' };
  } else {
    const via = opts.memoryCgroup === false ? null : cgroupChoice(facts, 'memory');
    if (via === 'cgroup-v2') {
      v2Controllers.push('memory');
      // Swap counted too: a runaway allocation is killed instead of pushing the host into swap.
      v2Writes.push({ file: 'memory.max', value: String(bytes) }, { file: 'memory.swap.max', value: '0', optional: true });
      memory = { mechanism: via, value: bytes, scope: 'sandbox', note: 'cgroup v2 memory.max (no swap where the kernel accounts it): the kernel kills the sandbox\'s largest process when all of them together exceed it' };
    } else if (via === 'cgroup-v1') {
      // memsw (memory + swap) may only be set once the plain limit is at or below it.
      addV1('memory', [
        { file: 'memory.limit_in_bytes', value: String(bytes) },
        { file: 'memory.memsw.limit_in_bytes', value: String(bytes), optional: true },
        { file: 'memory.swappiness', value: '0', optional: true },
      ]);
      memory = { mechanism: via, value: bytes, scope: 'sandbox', note: 'cgroup v1 memory limit (swap counted where the kernel accounts it): the kernel kills the sandbox\'s largest process when all of them together exceed it' };
    } else {
      rlimits.push(rlimit(RLIMIT.DATA, bytes));
      memory = { mechanism: 'rlimit', value: bytes, scope: 'process', note: 'RLIMIT_DATA: each process\'s allocations fail beyond the limit; the sandbox as a whole is not bounded' };
      if (bytes < RLIMIT_DATA_NODE_MIN_BYTES) warnings.push(`memory limit ${formatBytes(bytes)} is enforced per process by RLIMIT_DATA, under which Node.js hangs at startup instead of failing (it needs about 48 MiB); raise --memory to at least ${formatBytes(RLIMIT_DATA_NODE_MIN_BYTES)}`);
    }
  }

  // Processes.
  let pids: LimitChoice;
  const maxPids = limits.pids;
  if (maxPids === null) {
    pids = { mechanism: 'none', value: null, scope: null, note: 'no process limit in the policy' };
  } else {
    const via = cgroupChoice(facts, 'pids');
    if (via === 'cgroup-v2') {
      v2Controllers.push('pids');
      v2Writes.push({ file: 'pids.max', value: String(maxPids) });
    } else if (via === 'cgroup-v1') {
      addV1('pids', [{ file: 'pids.max', value: String(maxPids) }]);
    }
    // RLIMIT_NPROC counts the processes of one user in one user namespace, and the sandbox has
    // its own: it bounds the sandbox, not the user's other processes. The kernel never applies it
    // to host root (uid 0 is exempt even inside a user namespace), so root needs a cgroup.
    const nprocWorks = facts.uid !== 0;
    if (via) {
      if (nprocWorks) rlimits.push(rlimit(RLIMIT.NPROC, maxPids + NPROC_BACKSTOP_MARGIN));
      pids = { mechanism: via, value: maxPids, scope: 'sandbox', note: `${via === 'cgroup-v2' ? 'cgroup v2' : 'cgroup v1'} pids.max: fork fails once the sandbox has this many processes and threads` };
    } else if (nprocWorks) {
      rlimits.push(rlimit(RLIMIT.NPROC, maxPids));
      pids = { mechanism: 'rlimit', value: maxPids, scope: 'sandbox', note: 'RLIMIT_NPROC in the sandbox\'s own user namespace: fork fails once the sandbox has this many processes and threads' };
    } else {
      pids = { mechanism: 'none', value: maxPids, scope: null, note: 'not enforced: no writable pids cgroup, and RLIMIT_NPROC does not apply to root' };
      warnings.push(`process limit ${maxPids} is not enforced: cordon runs as root without a writable pids cgroup, and the kernel exempts root from RLIMIT_NPROC`);
    }
  }

  // CPU.
  let cpu: LimitChoice;
  const cores = limits.cpu;
  if (cores === null) {
    cpu = { mechanism: 'none', value: null, scope: null, note: 'no CPU limit in the policy' };
  } else {
    const quota = String(Math.max(CPU_MIN_QUOTA_US, Math.round(cores * CPU_PERIOD_US)));
    const via = cgroupChoice(facts, 'cpu');
    if (via === 'cgroup-v2') {
      v2Controllers.push('cpu');
      v2Writes.push({ file: 'cpu.max', value: `${quota} ${CPU_PERIOD_US}` });
    } else if (via === 'cgroup-v1') {
      addV1('cpu', [
        { file: 'cpu.cfs_period_us', value: String(CPU_PERIOD_US) },
        { file: 'cpu.cfs_quota_us', value: quota },
      ]);
    }
    if (via) {
      cpu = { mechanism: via, value: cores, scope: 'sandbox', note: 'CFS quota: all of the sandbox\'s processes together get at most that many cores of CPU time' };
    } else {
      cpu = { mechanism: 'none', value: cores, scope: null, note: 'not enforced: a CPU quota needs a writable cpu cgroup (rlimits can only cap total CPU seconds)' };
      warnings.push(`CPU limit ${cores} is not enforced: no writable cpu cgroup`);
    }
  }

  const cgroups: CgroupDirPlan[] = [];
  if (v2Controllers.length > 0) {
    const v2 = facts.v2!;
    cgroups.push({
      version: 2,
      base: v2.base!,
      controllers: v2Controllers,
      enableAtBase: v2Controllers.filter((c) => !v2.enabled.includes(c)),
      writes: v2Writes,
    });
  }
  for (const [mountPoint, writes] of v1Writes) {
    const h = facts.v1.find((x) => x.mountPoint === mountPoint)!;
    cgroups.push({ version: 1, base: h.own, controllers: h.controllers, enableAtBase: [], writes });
  }

  return {
    memory,
    pids,
    cpu,
    timeoutMs: limits.timeoutMs,
    cgroups,
    rlimits,
    tmpfsBytes: memory.mechanism === 'rlimit' ? memory.value : null,
    warnings,
  };
}
