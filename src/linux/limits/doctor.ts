// `cordon doctor` facts for resource limits: which mechanism enforces each limit on this host for
// this user, and, when cgroups are out of reach, how to get them. Pure given the facts.
import { detectCgroupFacts, type CgroupFacts, type Controller } from './detect.js';
import { planLimits, type Mechanism } from './plan.js';

export interface LimitCheck {
  /** Shaped like src/linux/doctor.ts's Check, so the two lists can be printed together. */
  layer: string;
  limit: 'memory' | 'pids' | 'cpu' | 'timeout';
  mechanism: Mechanism | 'timer';
  /** The limit binds the sandbox as a whole (not just each process, and not unenforced). */
  ok: boolean;
  detail: string;
  fix?: string;
}

const DELEGATE_DROPIN =
  'sudo mkdir -p /etc/systemd/system/user@.service.d && printf \'[Service]\\nDelegate=cpu memory pids\\n\' | sudo tee /etc/systemd/system/user@.service.d/delegate.conf && sudo systemctl daemon-reload` and log in again';

/** How to get a writable cgroup with `controller` on a host like `facts`. */
export function cgroupFix(facts: CgroupFacts, controller: Controller): string {
  const v1 = facts.v1.find((h) => h.controllers.includes(controller));
  const v2 = facts.v2;
  if (v1 && !(v2?.available.includes(controller))) {
    return facts.uid === 0
      ? `the ${controller} cgroup (v1, ${v1.own}) is not writable: is /sys/fs/cgroup mounted read-only (a container)? Give cordon a writable cgroup, or run it on the host`
      : `cgroup v1 (used here for ${controller}) can only be managed by root: run cordon as root, or switch the host to cgroup v2 (kernel parameter \`systemd.unified_cgroup_hierarchy=1\`) and use systemd's user delegation`;
  }
  if (!v2) return 'no cgroup filesystem is mounted: mount cgroup v2 (`sudo mount -t cgroup2 none /sys/fs/cgroup`)';
  if (!v2.base) {
    return facts.uid === 0
      ? `the cgroup v2 hierarchy at ${v2.mountPoint} is not writable: is it mounted read-only (a container)? Give cordon a writable cgroup`
      : `this process's cgroup (${v2.own}) is not delegated to you: start cordon under your systemd user manager, e.g. \`systemd-run --user --scope cordon …\`, whose cgroup (user@${facts.uid}.service) is yours`;
  }
  if (!v2.available.includes(controller)) {
    return facts.uid === 0
      ? `the ${controller} controller is not available in ${v2.base}: enable it in the parent's cgroup.subtree_control`
      : `your delegated cgroup (${v2.base}) has no ${controller} controller: delegate it with \`${DELEGATE_DROPIN}`;
  }
  return `${v2.base} holds processes, so the ${controller} controller cannot be enabled below it: start cordon from a cgroup with no processes of its own beside it, e.g. \`systemd-run --user --scope cordon …\``;
}

/** Which mechanism enforces each limit here, for this user. */
export function limitChecks(facts: CgroupFacts = detectCgroupFacts()): LimitCheck[] {
  // Every limit set, so the plan shows the mechanism each would get.
  const plan = planLimits({ memoryBytes: 1 << 30, pids: 4096, cpu: 1, timeoutMs: 60_000 }, facts);
  const checks: LimitCheck[] = [];
  const label = (m: Mechanism) => (m === 'cgroup-v2' ? 'cgroup v2' : m === 'cgroup-v1' ? 'cgroup v1' : m === 'rlimit' ? 'rlimit' : 'not enforced');
  for (const limit of ['memory', 'pids', 'cpu'] as const) {
    const choice = plan[limit];
    const ok = choice.mechanism === 'cgroup-v2' || choice.mechanism === 'cgroup-v1' || (choice.mechanism === 'rlimit' && choice.scope === 'sandbox');
    const noun = limit === 'pids' ? 'process limit' : `${limit} limit`;
    const detail = choice.note;
    const fix = choice.mechanism === 'cgroup-v2' || choice.mechanism === 'cgroup-v1' ? undefined : cgroupFix(facts, limit);
    checks.push({ layer: `${noun} (${label(choice.mechanism)})`, limit, mechanism: choice.mechanism, ok, detail, ...(fix ? { fix } : {}) });
  }
  checks.push({
    layer: 'wall-clock limit (timer)',
    limit: 'timeout',
    mechanism: 'timer',
    ok: true,
    detail: 'cordon terminates the whole sandbox when --timeout expires (SIGTERM, then SIGKILL)',
  });
  return checks;
}
