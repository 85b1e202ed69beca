// The environment a sandboxed command starts with. Pure: the host environment is an argument.
import { CORE_ENV_NAMES, SECRET_ENV_PATTERNS } from './defaults.js';
import type { EnvInherit, ResolvedEnv } from './types.js';

/** `*` wildcard, whole-name, case-insensitive. */
export function nameMatches(pattern: string, name: string): boolean {
  const re = new RegExp('^' + pattern.split('*').map((p) => p.replace(/[.+?^${}()|[\]\\]/g, '\\$&')).join('.*') + '$', 'i');
  return re.test(name);
}

export interface EnvPolicy {
  inherit: EnvInherit;
  scrub: string[];
  keep: string[];
  set: Record<string, string>;
}

export function computeEnv(host: Record<string, string | undefined>, policy: EnvPolicy): ResolvedEnv {
  const scrub = [...SECRET_ENV_PATTERNS, ...policy.scrub];
  const vars: Record<string, string> = {};
  const removed: string[] = [];
  for (const [name, value] of Object.entries(host)) {
    if (value === undefined) continue;
    const inherited = policy.inherit === 'all' || (policy.inherit === 'core' && CORE_ENV_NAMES.includes(name));
    const kept = policy.keep.some((p) => nameMatches(p, name));
    if (!inherited && !kept) continue;
    if (!kept && scrub.some((p) => nameMatches(p, name))) {
      removed.push(name);
      continue;
    }
    vars[name] = value;
  }
  Object.assign(vars, policy.set);
  return { vars, removed: removed.sort() };
}
