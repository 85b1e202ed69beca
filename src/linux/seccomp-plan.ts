// Chooses the seccomp program for a policy and this kernel, and packages it for the launcher.
import { release } from 'node:os';
import type { ResolvedPolicy } from '../policy/types.js';
import type { SeccompPlan } from './launcher-protocol.js';
import { compileSeccomp, type Arch } from './seccomp/filter.js';

/** Kernel version as [major, minor], from uname. */
export function kernelVersion(text = release()): [number, number] {
  const m = /^(\d+)\.(\d+)/.exec(text);
  return m ? [Number(m[1]), Number(m[2])] : [0, 0];
}

/** User notification with "continue" answers needs Linux 5.9 (SECCOMP_USER_NOTIF_FLAG_CONTINUE was 5.5, ADDFD 5.9). */
export function kernelHasNotify(v = kernelVersion()): boolean {
  return v[0] > 5 || (v[0] === 5 && v[1] >= 9);
}

export interface SeccompChoice {
  arch: Arch;
  /** Report denials through the launcher (needs user notification). */
  report: boolean;
  /** Also report writes the sandbox refuses (costs a round trip per write-intent syscall). */
  observeWrites: boolean;
  /** No namespaces isolate the command (reduced tier): refuse IP sockets when network is off, and socket(AF_UNIX). */
  noNetworkNamespace?: boolean;
}

/** Compiled programs by spec: a sandbox compiles the same one for every command. */
const compiledCache = new Map<string, ReturnType<typeof compileSeccomp>>();

export function seccompPlanFor(policy: ResolvedPolicy, choice: SeccompChoice): SeccompPlan {
  const network = policy.network.mode === 'off' ? 'off' : policy.network.mode === 'allow-list' ? 'proxy' : 'full';
  const spec = {
    arch: choice.arch,
    network,
    denyAction: choice.report ? 'notify' : 'errno',
    observeWrites: choice.report && choice.observeWrites,
    denyIpSockets: network === 'off' && !!choice.noNetworkNamespace,
    denyUnixSocketCreation: !!choice.noNetworkNamespace,
  } as const;
  const key = JSON.stringify(spec);
  let compiled = compiledCache.get(key);
  if (!compiled) compiledCache.set(key, (compiled = compileSeccomp(spec)));
  const names = new Map<number, string>();
  for (const [nr, d] of compiled.denied) names.set(nr, d.name);
  for (const [nr, o] of compiled.observed) names.set(nr, o.name);
  return {
    program: compiled.program,
    required: !policy.allowReduced,
    denied: choice.report ? [...compiled.denied].map(([nr, d]) => ({ nr, errno: d.errno })) : [],
    observed: [...compiled.observed].map(([nr, o]) => ({ nr, flagsArg: o.flagsArg ?? -1, paths: o.paths })),
    okPrefixes: [],
    badPrefixes: [],
    names,
  };
}
