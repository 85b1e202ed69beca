// The environment a sandboxed command starts with. Pure: the host environment is an argument.
import { CORE_ENV_NAMES, SECRET_ENV_PATTERNS } from './defaults.js';
import type { EnvInherit, ResolvedEnv } from './types.js';

/** One regular expression for a list of `*`-wildcard name patterns (whole name, case-insensitive). */
export function namePatterns(patterns: readonly string[]): RegExp {
  if (!patterns.length) return /(?!)/;
  const alt = patterns.map((p) => p.split('*').map((part) => part.replace(/[.+?^${}()|[\]\\]/g, '\\$&')).join('.*'));
  return new RegExp(`^(?:${alt.join('|')})$`, 'i');
}

export interface EnvPolicy {
  inherit: EnvInherit;
  scrub: string[];
  keep: string[];
  set: Record<string, string>;
}

export function computeEnv(host: Record<string, string | undefined>, policy: EnvPolicy): ResolvedEnv {
  const scrub = namePatterns([...SECRET_ENV_PATTERNS, ...policy.scrub]);
  const keep = namePatterns(policy.keep);
  const vars: Record<string, string> = {};
  const removed: string[] = [];
  for (const [name, value] of Object.entries(host)) {
    if (value === undefined) continue;
    const inherited = policy.inherit === 'all' || (policy.inherit === 'core' && CORE_ENV_NAMES.includes(name));
    const kept = keep.test(name);
    if (!inherited && !kept) continue;
    if (!kept && scrub.test(name)) {
      removed.push(name);
      continue;
    }
    vars[name] = value;
  }
  Object.assign(vars, policy.set);
  return { vars, removed: removed.sort() };
}
