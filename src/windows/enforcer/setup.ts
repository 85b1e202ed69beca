// Applies a setup plan through the Win32 layer: in plan order, each change journaled before it is
// made, idempotent (what is already in place is left alone and not journaled again), and rolled
// back from the journal when a step fails.

import type { Ace } from '../acl.js';
import { PRINCIPAL, type SetupPlan, type SetupStep, fenceSid, isPlaceholder } from '../plan.js';
import type { FirewallRule, InstallState } from '../types.js';
import { Journal, type ManifestStore } from './manifest.js';
import { ERROR, Win32Error, type WindowsSystem } from './system.js';
import { undoAll } from './uninstall.js';

export class SetupError extends Error {
  constructor(readonly step: string, message: string, readonly rolledBack: boolean, options?: { cause?: unknown }) {
    super(message, options);
  }
}

/** A password from a CSPRNG: 32 characters from 64 symbols that need no quoting anywhere. */
export function passwordFromBytes(bytes: Uint8Array): string {
  const alphabet = 'ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789-_.+=@';
  if (bytes.length < 32) throw new Error('passwordFromBytes: need 32 random bytes');
  // 64 symbols: a byte masked to 6 bits maps uniformly.
  const alphabet64 = alphabet.padEnd(64, '#');
  return Array.from(bytes.slice(0, 32), (b) => alphabet64[b & 63]).join('');
}

/** Windows' default complexity rule: three of upper case, lower case, digits, symbols. */
export function meetsComplexity(password: string): boolean {
  const classes = [/[A-Z]/, /[a-z]/, /[0-9]/, /[^A-Za-z0-9]/].filter((re) => re.test(password)).length;
  return password.length >= 14 && classes >= 3;
}

/** Draws passwords until one meets the complexity rule (a few draws at most in practice). */
export function generatePassword(randomBytes: (n: number) => Uint8Array): string {
  for (let attempt = 0; attempt < 64; attempt += 1) {
    const candidate = passwordFromBytes(randomBytes(32));
    if (meetsComplexity(candidate)) return candidate;
  }
  throw new Error('could not draw a password that meets the complexity rule');
}

export interface SetupOptions {
  realUserSid: string;
  installId: string;
  randomPassword: () => string;
  now: () => string;
  /** Called before each step with its id (progress output). */
  onStep?: (step: SetupStep) => void;
}

function ruleEquals(a: FirewallRule, b: FirewallRule): boolean {
  return JSON.stringify(a) === JSON.stringify(b);
}

/** The missing part of `wanted` given the explicit ACEs already there (by type, SID and flags). */
export function missingAces(existing: readonly Ace[], wanted: readonly Ace[]): Ace[] {
  const out: Ace[] = [];
  for (const w of wanted) {
    const have = existing.filter((e) => e.type === w.type && e.sid === w.sid && (e.flags & 0xf) === (w.flags & 0xf)).reduce((m, e) => m | e.mask, 0);
    const missing = (w.mask & ~have) >>> 0;
    if (missing !== 0) out.push({ ...w, mask: missing });
  }
  return out;
}

export async function runSetup(plan: SetupPlan, sys: WindowsSystem, store: ManifestStore, options: SetupOptions): Promise<InstallState> {
  const me = await sys.currentUser();
  if (!me.elevated) throw new SetupError('preflight', 'cordon setup must run as an administrator (elevated); re-run it from an elevated prompt', false);
  // cordon's machine directory holds the manifest itself, so it exists before the journal does and
  // is removed by uninstall after the journal is empty.
  try {
    if (!(await sys.pathInfo(plan.programDataDir))) await sys.createDirectory(plan.programDataDir, plan.programDataSddl);
  } catch (e) {
    throw new SetupError('state-dir', `setup could not create ${plan.programDataDir}: ${e instanceof Error ? e.message : String(e)}; nothing was changed`, true, { cause: e });
  }
  const previous = await store.load();
  const ours = new Set(previous.flatMap((r) => (r.kind === 'intent' && (r.change.op === 'created-group' || r.change.op === 'created-user') ? [r.change.name.toUpperCase()] : [])));
  const journal = await Journal.open(store);
  const sids = new Map<string, string>([[PRINCIPAL.realUser, options.realUserSid], [PRINCIPAL.fence, fenceSid(options.installId)]]);
  const passwords = new Map<string, string>();
  const resolve = (sid: string) => {
    if (!isPlaceholder(sid)) return sid;
    const value = sids.get(sid);
    if (!value) throw new Error(`internal: ${sid} used before it was created`);
    return value;
  };
  const resolveSddl = (sddl: string) => sddl.replace(/@[a-zA-Z]+(:\d+)?/g, (m) => resolve(m));

  let current = 'preflight';
  try {
    for (const step of plan.steps) {
      current = step.id;
      options.onStep?.(step);
      await applyStep(step);
    }
  } catch (e) {
    const cause = e instanceof Error ? e.message : String(e);
    let rolledBack = true;
    try {
      const failures = await undoAll(sys, store);
      rolledBack = failures.length === 0;
    } catch {
      rolledBack = false;
    }
    throw new SetupError(current, `setup failed at step ${current}: ${cause}${rolledBack ? '; every change made so far was undone' : `; some changes could not be undone, run \`cordon uninstall\``}`, rolledBack, { cause: e });
  }

  const state: InstallState = {
    version: 1,
    installId: options.installId,
    names: plan.settings.names,
    groupSid: resolve(PRINCIPAL.group),
    offlineUserSid: resolve(PRINCIPAL.offline),
    onlineUserSid: resolve(PRINCIPAL.online),
    slotSids: Array.from({ length: plan.settings.slotCount }, (_, i) => resolve(PRINCIPAL.slot(i))),
    proxyPorts: plan.settings.proxyPorts,
    credentialPath: plan.credentialPath,
    createdAt: options.now(),
  };
  return state;

  async function applyStep(step: SetupStep): Promise<void> {
    switch (step.kind) {
      case 'create-group':
      case 'create-user': {
        const existing = await sys.lookupAccount(step.name);
        const kind = step.kind === 'create-group' ? 'group' : 'user';
        if (existing) {
          if (existing.kind !== kind || !ours.has(step.name.toUpperCase())) {
            throw new Win32Error(kind === 'group' ? 'NetLocalGroupAdd' : 'NetUserAdd', kind === 'group' ? ERROR.ALIAS_EXISTS : ERROR.NERR_USER_EXISTS,
              `a local ${existing.kind} named ${step.name} exists and was not created by cordon; remove it or choose other names`);
          }
          sids.set(step.principal, existing.sid);
          if (kind === 'user') {
            const password = options.randomPassword();
            await sys.setUserPassword(step.name, password); // rotated on every setup
            passwords.set(step.name, password);
          }
          return;
        }
        if (kind === 'group') {
          const sid = await journal.record({ op: 'created-group', name: step.name }, () => sys.createLocalGroup(step.name, step.comment), (s) => ({ sid: s }));
          sids.set(step.principal, sid);
        } else {
          const password = options.randomPassword();
          const sid = await journal.record({ op: 'created-user', name: step.name }, () => sys.createLocalUser(step.name, password, step.comment), (s) => ({ sid: s }));
          passwords.set(step.name, password);
          sids.set(step.principal, sid);
        }
        ours.add(step.name.toUpperCase());
        return;
      }
      case 'add-member': {
        const group = step.groupSid ? await sys.groupNameOf(step.groupSid) : step.group;
        const member = resolve(step.member);
        if ((await sys.groupMembers(group)).includes(member)) return;
        await journal.record({ op: 'added-member', group, memberSid: member }, () => sys.addGroupMember(group, member));
        return;
      }
      case 'hide-user': {
        if (await sys.isUserHidden(step.name)) return;
        await journal.record({ op: 'hid-user', name: step.name }, () => sys.setUserHidden(step.name, true));
        return;
      }
      case 'deny-logon-rights': {
        const sid = resolve(step.principal);
        const have = new Set(await sys.accountRights(sid));
        const missing = step.rights.filter((r) => !have.has(r));
        if (missing.length === 0) return;
        await journal.record({ op: 'added-rights', sid, rights: missing }, () => sys.addAccountRights(sid, missing));
        return;
      }
      case 'store-credentials': {
        const secrets: Record<string, string> = {};
        for (const user of step.users) {
          const password = passwords.get(user);
          if (!password) throw new Error(`internal: no password for ${user}`);
          secrets[user] = password;
        }
        const blob = await sys.protectData(Buffer.from(JSON.stringify(secrets)));
        await journal.record({ op: 'wrote-file', path: step.path }, () => sys.writeFileWithSddl(step.path, blob, resolveSddl(step.sddl)));
        return;
      }
      case 'firewall-rule': {
        const rule: FirewallRule = { ...step.rule, ...(step.rule.localUserSddl ? { localUserSddl: resolveSddl(step.rule.localUserSddl) } : {}) };
        const previous = await sys.getFirewallRule(rule.name);
        if (previous && ruleEquals(previous, rule)) return;
        await journal.record({ op: 'put-firewall-rule', name: rule.name, previous }, () => sys.putFirewallRule(rule));
        const readBack = await sys.getFirewallRule(rule.name);
        if (!readBack || !ruleEquals(readBack, rule)) {
          throw new Win32Error('INetFwRules::Add', 0, `firewall rule ${rule.name} did not read back as written (is a Group Policy overriding local rules?)`);
        }
        return;
      }
      case 'remove-firewall-rule': {
        const previous = await sys.getFirewallRule(step.name);
        if (!previous) return;
        await journal.record({ op: 'removed-firewall-rule', rule: previous }, () => sys.removeFirewallRule(step.name));
        return;
      }
      case 'verify-network-fence': {
        const password = passwords.get(step.user);
        if (!password) throw new Error(`internal: no password for ${step.user}`);
        const result = await sys.probeConnectAs({ name: step.user, password }, step.address, step.port);
        if (result !== 'blocked') {
          throw new Win32Error('connect', 0, `${step.user} reached ${step.address}:${step.port} despite the firewall rules; cordon cannot fence the network on this machine (is the firewall service off, or does it skip loopback?)`);
        }
        return;
      }
      case 'add-aces': {
        if (!(await sys.pathInfo(step.path))) return;
        const wanted = step.aces.map((a) => ({ ...a, sid: resolve(a.sid) }));
        const missing = missingAces(await sys.explicitAces(step.path), wanted);
        if (missing.length === 0) return;
        await journal.record({ op: 'added-aces', path: step.path, aces: missing }, () => sys.addAces(step.path, missing));
        return;
      }
      case 'ensure-dir': {
        if (await sys.pathInfo(step.path)) return;
        await journal.record({ op: 'created-dir', path: step.path, tree: true }, () => sys.createDirectory(step.path));
        return;
      }
      case 'write-install-state': {
        // Written last: its presence means setup completed (the per-command side checks for it).
        const state: InstallState = {
          version: 1, installId: options.installId, names: plan.settings.names,
          groupSid: resolve(PRINCIPAL.group), offlineUserSid: resolve(PRINCIPAL.offline), onlineUserSid: resolve(PRINCIPAL.online),
          slotSids: Array.from({ length: plan.settings.slotCount }, (_, i) => resolve(PRINCIPAL.slot(i))),
          proxyPorts: plan.settings.proxyPorts, credentialPath: plan.credentialPath, createdAt: options.now(),
        };
        await journal.record({ op: 'wrote-file', path: step.path }, () =>
          sys.writeFileWithSddl(step.path, Buffer.from(JSON.stringify(state, null, 2)), `O:BAD:P(A;;FA;;;SY)(A;;FA;;;BA)(A;;FR;;;${options.realUserSid})`));
        return;
      }
    }
  }
}

