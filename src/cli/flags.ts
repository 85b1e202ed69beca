// Command-line flags shared by `cordon run`, `cordon shell` and `cordon policy show`: parsed into
// a PolicyInput (the strongest policy layer). Parsing only; no policy decisions.
import { parseArgs } from 'node:util';
import { PolicyError } from '../policy/errors.js';
import type { PolicyInput } from '../policy/types.js';
import { validatePolicyInput } from '../policy/validate.js';

export const POLICY_FLAGS = {
  mode: { type: 'string' },
  workspace: { type: 'string' },
  write: { type: 'string', multiple: true },
  protect: { type: 'string', multiple: true },
  'deny-read': { type: 'string', multiple: true },
  'allow-read': { type: 'string', multiple: true },
  network: { type: 'string' },
  'allow-domain': { type: 'string', multiple: true },
  'deny-domain': { type: 'string', multiple: true },
  transparent: { type: 'boolean' },
  socket: { type: 'string', multiple: true },
  'env-inherit': { type: 'string' },
  'env-keep': { type: 'string', multiple: true },
  'env-scrub': { type: 'string', multiple: true },
  'env-set': { type: 'string', multiple: true },
  timeout: { type: 'string' },
  memory: { type: 'string' },
  pids: { type: 'string' },
  cpu: { type: 'string' },
  policy: { type: 'string' },
  'no-user-config': { type: 'boolean' },
  'allow-reduced': { type: 'boolean' },
} as const;

/** Policy field → the flag that sets it, so errors name what the user typed. */
const FIELD_TO_FLAG: [RegExp, string][] = [
  [/^mode/, '--mode'], [/^workspace/, '--workspace'], [/^filesystem\.write/, '--write'], [/^filesystem\.protect/, '--protect'],
  [/^filesystem\.denyRead/, '--deny-read'], [/^filesystem\.allowRead/, '--allow-read'], [/^network\.mode/, '--network'],
  [/^network\.allow/, '--allow-domain'], [/^network\.deny/, '--deny-domain'], [/^sockets/, '--socket'],
  [/^env\.inherit/, '--env-inherit'], [/^env\.keep/, '--env-keep'], [/^env\.scrub/, '--env-scrub'], [/^env\.set/, '--env-set'],
  [/^limits\.timeout/, '--timeout'], [/^limits\.memory/, '--memory'], [/^limits\.pids/, '--pids'], [/^limits\.cpu/, '--cpu'],
];

type Values = ReturnType<typeof parseArgs<{ options: typeof POLICY_FLAGS }>>['values'];

function number(flag: string, raw: string | undefined): number | undefined {
  if (raw === undefined) return undefined;
  const n = Number(raw);
  if (!Number.isFinite(n) || raw.trim() === '') throw new PolicyError(`${flag}: ${JSON.stringify(raw)} is not a number; e.g. ${flag} 512`);
  return n;
}

/** Builds the flags' policy layer and validates it, naming flags in errors. */
export function flagsToPolicy(v: Values, validatePattern?: (p: string) => void): PolicyInput {
  const set: Record<string, string> = {};
  for (const kv of v['env-set'] ?? []) {
    const i = kv.indexOf('=');
    if (i <= 0) throw new PolicyError(`--env-set: ${JSON.stringify(kv)} is not NAME=VALUE; e.g. --env-set CI=1`);
    set[kv.slice(0, i)] = kv.slice(i + 1);
  }
  const raw: PolicyInput = {
    mode: v.mode as PolicyInput['mode'],
    workspace: v.workspace,
    filesystem: { write: v.write, protect: v.protect, denyRead: v['deny-read'], allowRead: v['allow-read'] },
    network: {
      mode: (v.network as NonNullable<PolicyInput['network']>['mode']) ?? (v['allow-domain']?.length ? 'allow-list' : undefined),
      allow: v['allow-domain'],
      deny: v['deny-domain'],
      transparent: v.transparent,
    },
    sockets: { allow: v.socket },
    env: { inherit: v['env-inherit'] as NonNullable<PolicyInput['env']>['inherit'], keep: v['env-keep'], scrub: v['env-scrub'], set: Object.keys(set).length ? set : undefined },
    limits: { timeout: v.timeout, memory: v.memory, pids: number('--pids', v.pids), cpu: number('--cpu', v.cpu) },
    allowReduced: v['allow-reduced'] || undefined,
  };
  const pruned = JSON.parse(JSON.stringify(raw)) as Record<string, unknown>; // drops undefined
  for (const [k, val] of Object.entries(pruned)) if (val && typeof val === 'object' && !Array.isArray(val) && Object.keys(val).length === 0) delete pruned[k];
  try {
    return validatePolicyInput(pruned, 'flags', validatePattern);
  } catch (e) {
    if (!(e instanceof PolicyError)) throw e;
    const m = /^flags: ([^:]+): (.*)$/.exec(e.message);
    const flag = m && FIELD_TO_FLAG.find(([re]) => re.test(m[1]!))?.[1];
    throw new PolicyError(flag && m ? `${flag}: ${m[2]}` : e.message);
  }
}
