// Says what a command used and which limit ended it, from the kernel's cgroup counters when the
// sandbox had a cgroup, from the launcher's rusage otherwise. Pure.
import type { CgroupUsage } from './cgroup.js';
import { formatBytes, type LimitsPlan } from './plan.js';

export type LimitHit = 'memory' | 'pids' | 'timeout' | null;

/** How the command ended, as the runner saw it. */
export interface CommandEnd {
  /** Exit status, or null when a signal ended it. */
  code: number | null;
  signal: number | null;
  /** cordon's wall-clock timer fired and terminated the sandbox. */
  timedOut: boolean;
  /** The launcher's rusage of the command's process tree, when it reported one. */
  rusage: { userMs: number; sysMs: number; maxRssKb: number } | null;
}

export interface LimitsReport {
  /** The shape of the run result's `usage`. */
  usage: { peakMemoryBytes: number | null; cpuMs: number | null };
  /** `sandbox`: all processes together (cgroup); `largest-process`: the biggest one (rusage). */
  peakMemoryScope: 'sandbox' | 'largest-process' | null;
  /** The limit that ended the command (it failed after the limit fired), or null. */
  limitHit: LimitHit;
  /** kernel: a cgroup counter recorded it; inferred: deduced from usage near an rlimit; timer: cordon's own timer. */
  evidence: 'kernel' | 'inferred' | 'timer' | null;
  /** One line for the user, e.g. `memory limit 512 MiB reached: the kernel killed 1 process`. */
  reason: string | null;
  /** Limit events that did not end the command (a refused fork it survived, throttling). */
  notes: string[];
}

/** Only limits the user chose are worth a note (the default is most of the machine's memory). */
const DEFAULT_MEMORY_NOTE_BELOW = 8 * 2 ** 30;

/** Share of a per-process RLIMIT_DATA that a failed command's peak resident memory must reach to blame the limit. */
export const RLIMIT_MEMORY_BLAME_FRACTION = 0.9;

function plural(n: number, word: string): string {
  return `${n} ${word}${n === 1 ? '' : 'es'}`;
}

export function reportLimits(plan: LimitsPlan, end: CommandEnd, cgroup: CgroupUsage | null): LimitsReport {
  const failed = end.code !== 0;
  const rssBytes = end.rusage ? end.rusage.maxRssKb * 1024 : null;
  const peakFromCgroup = cgroup?.peakMemoryBytes ?? null;
  const cpuFromCgroup = cgroup?.cpuMs ?? null;
  const usage = {
    peakMemoryBytes: peakFromCgroup ?? rssBytes,
    cpuMs: cpuFromCgroup ?? (end.rusage ? end.rusage.userMs + end.rusage.sysMs : null),
  };
  const peakMemoryScope = peakFromCgroup !== null ? 'sandbox' : rssBytes !== null ? 'largest-process' : null;
  const notes: string[] = [];
  const oomKills = cgroup?.oomKills ?? 0;
  const pidsRefused = cgroup?.pidsRefused ?? 0;
  const peak = usage.peakMemoryBytes === null ? '' : ` (peak ${formatBytes(usage.peakMemoryBytes)})`;

  let limitHit: LimitHit = null;
  let evidence: LimitsReport['evidence'] = null;
  let reason: string | null = null;
  if (end.timedOut) {
    limitHit = 'timeout';
    evidence = 'timer';
    reason = `wall-clock limit ${plan.timeoutMs === null ? '' : `${plan.timeoutMs / 1000}s `}reached: the sandbox was terminated`;
  } else if (failed && oomKills > 0) {
    limitHit = 'memory';
    evidence = 'kernel';
    reason = `memory limit ${plan.memory.value === null ? '' : `${formatBytes(plan.memory.value)} `}reached: the kernel killed ${plural(oomKills, 'process')}${peak}`;
  } else if (failed && pidsRefused > 0) {
    limitHit = 'pids';
    evidence = 'kernel';
    reason = `process limit ${plan.pids.value ?? ''} reached: the kernel refused ${pidsRefused} fork${pidsRefused === 1 ? '' : 's'}`;
  } else if (failed && plan.memory.mechanism === 'rlimit' && plan.memory.value !== null && rssBytes !== null && rssBytes >= plan.memory.value * RLIMIT_MEMORY_BLAME_FRACTION) {
    // An rlimit leaves no record: the process just sees ENOMEM. A failure at the limit is blamed on it.
    limitHit = 'memory';
    evidence = 'inferred';
    reason = `memory limit ${formatBytes(plan.memory.value)} per process probably reached: a process grew to ${formatBytes(rssBytes)} before the command failed`;
  }
  if (limitHit !== 'memory' && oomKills > 0) notes.push(`the memory limit was reached and the kernel killed ${plural(oomKills, 'process')}`);
  if (limitHit !== 'pids' && pidsRefused > 0) notes.push(`the process limit refused ${pidsRefused} fork${pidsRefused === 1 ? '' : 's'}`);
  if (cgroup?.cpuThrottledMs) notes.push(`the CPU quota held the sandbox back for ${Math.round(cgroup.cpuThrottledMs)} ms`);
  // A single allocation larger than the rlimit fails before the process grows: nothing to infer
  // from, but the user should know the limit was there.
  if (!limitHit && failed && plan.memory.mechanism === 'rlimit' && plan.memory.value !== null && plan.memory.value < DEFAULT_MEMORY_NOTE_BELOW)
    notes.push(`the command failed with each process limited to ${formatBytes(plan.memory.value)} of memory (memory limit, RLIMIT_DATA): an out-of-memory error above means it reached that limit; raise --memory if it needs more`);
  return { usage, peakMemoryScope, limitHit, evidence, reason, notes };
}
