// Resource limits for Linux sandboxes: plan (pure) → cgroup/rlimit enforcement → usage report.
export { detectCgroupFacts, cgroupFactsFrom, parseCgroupMounts, parseProcCgroup, cgroupDir } from './detect.js';
export type { CgroupFacts, CgroupV1Hierarchy, CgroupV2Facts, CgroupMount, CgroupProbe, Controller } from './detect.js';
export { planLimits, formatBytes, CPU_PERIOD_US, NPROC_BACKSTOP_MARGIN, RLIMIT_DATA_NODE_MIN_BYTES } from './plan.js';
export type { LimitsPlan, LimitChoice, Mechanism, CgroupDirPlan, CgroupWrite, RlimitRecord } from './plan.js';
export { SandboxCgroup, sweepStaleCgroups, parseKeyedCounters, usageSince, PARENT_NAME } from './cgroup.js';
export type { CgroupUsage } from './cgroup.js';
export { reportLimits, RLIMIT_MEMORY_BLAME_FRACTION } from './report.js';
export type { CommandEnd, LimitHit, LimitsReport } from './report.js';
export { limitChecks, cgroupFix } from './doctor.js';
export type { LimitCheck } from './doctor.js';
