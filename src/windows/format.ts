// Human-readable plans for `cordon setup --dry-run`: every account, SID, ACE (in SDDL), firewall
// rule, token and job setting, in the order they would be applied.

import { type Ace, aceToSddl } from './acl.js';
import type { CommandPlan, SetupPlan, SetupStep } from './plan.js';
import { hex, icaclsRights } from './rights.js';
import { SID } from './sids.js';

export type Namer = (sid: string) => string;

const WELL_KNOWN: Record<string, string> = {
  [SID.Administrators]: 'BUILTIN\\Administrators', [SID.Users]: 'BUILTIN\\Users', [SID.Restricted]: 'RESTRICTED',
  [SID.OwnerRights]: 'OWNER RIGHTS', [SID.LocalSystem]: 'SYSTEM', [SID.Everyone]: 'Everyone',
};

/** Placeholders, well-known and named SIDs as `<name>`; everything else as is. */
export function namer(names: Record<string, string>): Namer {
  const all = { ...WELL_KNOWN, ...names };
  return (sid) => (all[sid] ? `<${all[sid]}>` : sid);
}

function sddl(a: Ace, name: Namer): string {
  return aceToSddl(a).replace(/;;;([^)]+)\)$/, (_, sid: string) => `;;;${name(sid)})`);
}

function rights(mask: number): string {
  try {
    return icaclsRights(mask);
  } catch {
    return hex(mask);
  }
}

function describeAce(a: Ace, name: Namer): string {
  const inherit = [a.flags & 1 ? 'OI' : '', a.flags & 2 ? 'CI' : '', a.flags & 4 ? 'NP' : '', a.flags & 8 ? 'IO' : ''].filter(Boolean).join('');
  return `${a.type === 'allow' ? 'allow' : 'deny '} ${name(a.sid)} ${inherit ? `(${inherit})` : ''}(${rights(a.mask)})  ${sddl(a, name)}`;
}

function setupLine(step: SetupStep, name: Namer): string[] {
  switch (step.kind) {
    case 'create-group': return [`create local group ${step.name}  → ${name(step.principal)}  "${step.comment}"`];
    case 'create-user': return [`create local user ${step.name}  → ${name(step.principal)}  password: 32 random characters (CSPRNG), never expires`];
    case 'add-member': return [`add ${name(step.member)} to ${step.groupSid ? `${step.group} (${step.groupSid})` : step.group}`];
    case 'hide-user': return [`hide ${step.name} from the logon screen (HKLM\\…\\Winlogon\\SpecialAccounts\\UserList)`];
    case 'deny-logon-rights': return [`grant ${name(step.principal)} ${step.rights.join(', ')} (LSA)`];
    case 'store-credentials': return [`store the passwords of ${step.users.join(', ')} in ${step.path}: DPAPI (machine scope), file DACL ${step.sddl.replace(/@[a-zA-Z]+/g, (m) => name(m))}`];
    case 'firewall-rule': {
      const r = step.rule;
      const where = r.remoteAddresses === 'any' ? 'any address' : r.remoteAddresses.join(', ');
      const ports = r.remotePorts === 'any' ? '' : ` ports ${r.remotePorts.join(', ')}`;
      return [
        `firewall ${step.phase === 'broad' ? 'add (broad, first)' : 'add'} ${r.name}: outbound ${r.action} ${r.protocol} to ${where}${ports}`,
        `    local users: ${(r.localUserSddl ?? 'everyone').replace(/@[a-zA-Z]+/g, (m) => name(m))}`,
      ];
    }
    case 'remove-firewall-rule': return [`firewall remove ${step.name} (the narrow rules are in place)`];
    case 'verify-network-fence': return [`verify: ${step.user} cannot connect to ${step.address}:${step.port}; otherwise setup stops and undoes everything`];
    case 'add-aces': return [`ACL ${step.path}  (${step.reason})`, ...step.aces.map((a) => `    ${describeAce(a, name)}`)];
    case 'ensure-dir': return [`create ${step.path} (${step.reason})`];
    case 'write-install-state': return [`write ${step.path} (last: marks setup complete)`];
  }
}

export function formatSetupPlan(plan: SetupPlan, name: Namer): string {
  const lines: string[] = [];
  lines.push(`Machine state directory: ${plan.programDataDir}  DACL ${plan.programDataSddl.replace(/;;;(S-1-[\d-]+)\)/g, (_, s: string) => `;;;${name(s)})`)}`);
  lines.push(`Manifest (written before each change, replayed by uninstall): ${plan.manifestPath}`);
  lines.push('');
  for (const step of plan.steps) {
    const [first, ...rest] = setupLine(step, name);
    lines.push(`${step.id.padEnd(22)} ${first}`);
    for (const r of rest) lines.push(`${''.padEnd(22)} ${r}`);
  }
  return lines.join('\n') + '\n';
}

export function formatCommandPlan(plan: CommandPlan, name: Namer): string {
  const lines: string[] = [];
  const sid = (s: string) => name(s);
  lines.push(`Tier: ${plan.tier}${plan.tier === 'reduced' ? ' (no setup: weaker, see below)' : ''}`);
  lines.push(`Identity: ${plan.identity.userName} ${sid(plan.identity.userSid)} (${plan.identity.kind})`);
  if (plan.slot) lines.push(`Workspace slot: ${plan.slot.index} ${sid(plan.slot.sid)}${plan.slot.sharedWith.length ? ` shared with ${plan.slot.sharedWith.length}` : ''}`);
  lines.push(`Capability SID of ${plan.workspace}: ${plan.capabilitySid}`);
  lines.push('');
  lines.push('ACL steps (unelevated, idempotent, journaled in the user manifest):');
  for (const step of plan.aclSteps) {
    if (step.kind === 'ensure-dir') lines.push(`  create ${step.path}  (${step.reason})`);
    else if (step.kind === 'protect-multilink') lines.push(`  freeze the DACL of hard-linked files under ${step.root} before the first grant propagates`);
    else if (step.kind === 'remove-aces') lines.push(`  remove if present on ${step.path}: ${step.aces.map((a) => sddl(a, name)).join('')}  (${step.reason})`);
    else {
      lines.push(`  ${step.path}  (${step.reason})`);
      for (const a of step.aces) lines.push(`      ${describeAce(a, name)}`);
    }
  }
  lines.push('');
  lines.push('Child token (the runner, as the sandbox user, restricts its own token):');
  lines.push(`  CreateRestrictedToken(${plan.token.base === 'runner-self' ? 'runner token' : 'caller token'}, ${plan.token.flags.join(' | ')})`);
  lines.push(`  deny-only: ${plan.token.sidsToDisable.map(sid).join(', ')}${plan.token.disableLogonSids ? ', every logon SID' : ''}`);
  lines.push(`  restricting SIDs: ${plan.token.restrictingSids.map(sid).join(', ')}`);
  lines.push(`  default DACL: ${plan.token.defaultDacl.map((a) => sddl(a, name)).join('')}`);
  lines.push(`Job: kill on close, no breakaway, die on unhandled exception; processes ≤ ${plan.job.activeProcessLimit ?? '∞'}; memory ≤ ${plan.job.jobMemoryLimitBytes ?? '∞'} bytes; CPU ${plan.job.cpuRate === null ? 'unlimited' : `≤ ${plan.job.cpuRate / 100}% of the machine`}; UI limits ${plan.job.uiRestrictions.join(', ')}`);
  lines.push(`Desktop: WinSta0\\${plan.desktop.name}  ${plan.desktop.sddl.replace(/;;;([^)]+)\)/g, (_, s: string) => `;;;${name(s)})`)}  (no desktop, no command)`);
  lines.push(`  WinSta0 grant: ${sddl(plan.desktop.windowStationGrant, name)}`);
  if (plan.pipe) lines.push(`Pipe: ${plan.pipe.name}  ${plan.pipe.sddl.replace(/;;;([^)]+)\)/g, (_, s: string) => `;;;${name(s)})`)}  frames: u32 LE length + JSON, ≤ ${plan.pipe.maxFrameBytes} bytes, protocol ${plan.pipe.protocolVersion}, first instance, remote clients rejected`);
  lines.push(`Process: ${JSON.stringify(plan.process.argv)} in ${plan.process.cwd}; ${plan.process.creationFlags.join(' | ')}; inherits only its stdio handles; ${Object.keys(plan.process.env).length} environment variables`);
  lines.push(`Timeout: ${plan.timeoutMs === null ? 'none' : `${plan.timeoutMs} ms, then the job is terminated (exit 124)`}`);
  lines.push(`Network: ${plan.network.mode}${plan.network.enforced ? ' (enforced by the firewall rules above)' : ' (not enforced)'}${plan.network.proxyPort ? `, proxy 127.0.0.1:${plan.network.proxyPort}` : ''}`);
  for (const w of plan.warnings) lines.push(`warning: ${w}`);
  for (const g of plan.notProtected) lines.push(`not protected: ${g}`);
  return lines.join('\n') + '\n';
}
