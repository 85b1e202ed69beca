// Undo from the manifest: used for rollback after a failed setup and for `cordon uninstall`.
// Changes are undone newest first; an intent without `done` is undone too (the change may have been
// half made). Every undo tolerates the thing being gone already. What cannot be undone stays in the
// manifest so that a later run can retry it.

import { ERROR, Win32Error, type WindowsSystem } from './system.js';
import { type Change, type ManifestStore, pendingChanges } from './manifest.js';

export interface UndoFailure {
  change: Change;
  error: string;
}

const GONE = new Set<number>([ERROR.FILE_NOT_FOUND, ERROR.PATH_NOT_FOUND, ERROR.NERR_USER_NOT_FOUND, ERROR.NERR_GROUP_NOT_FOUND, ERROR.NONE_MAPPED]);

function isGone(e: unknown): boolean {
  return e instanceof Win32Error && GONE.has(e.code);
}

export function describeUndo(change: Change): string {
  switch (change.op) {
    case 'created-dir': return change.tree ? `remove ${change.path} and its contents` : `remove directory ${change.path} if still empty`;
    case 'wrote-file': return `delete file ${change.path}`;
    case 'created-group': return `delete local group ${change.name}`;
    case 'created-user': return `delete local user ${change.name} and its profile`;
    case 'added-member': return `remove ${change.memberSid} from ${change.group}`;
    case 'hid-user': return `unhide ${change.name} on the logon screen`;
    case 'added-rights': return `remove ${change.rights.join(', ')} from ${change.sid}`;
    case 'put-firewall-rule': return change.previous ? `restore firewall rule ${change.name}` : `remove firewall rule ${change.name}`;
    case 'removed-firewall-rule': return `re-add firewall rule ${change.rule.name}`;
    case 'added-aces': return `remove ${change.aces.length} ACE(s) cordon added on ${change.path}`;
  }
}

export async function undoChange(sys: WindowsSystem, change: Change): Promise<void> {
  switch (change.op) {
    case 'created-dir':
      if (!(await sys.pathInfo(change.path))) return;
      if (change.tree) {
        await sys.removeTree(change.path);
        return;
      }
      try {
        await sys.removeDirectory(change.path);
      } catch (e) {
        // cordon made it empty; whatever is in it now is the user's, so it stays.
        if (e instanceof Win32Error && e.code === ERROR.DIR_NOT_EMPTY) return;
        throw e;
      }
      return;
    case 'wrote-file':
      if (await sys.pathInfo(change.path)) await sys.removeFile(change.path);
      return;
    case 'created-group':
      if (await sys.lookupAccount(change.name)) await sys.deleteLocalGroup(change.name);
      return;
    case 'created-user': {
      const account = await sys.lookupAccount(change.name);
      if (!account) return;
      await sys.deleteUserProfile(account.sid);
      await sys.deleteLocalUser(change.name);
      return;
    }
    case 'added-member':
      if ((await sys.groupMembers(change.group).catch((): string[] => [])).includes(change.memberSid)) await sys.removeGroupMember(change.group, change.memberSid);
      return;
    case 'hid-user':
      if (await sys.lookupAccount(change.name)) await sys.setUserHidden(change.name, false);
      return;
    case 'added-rights':
      await sys.removeAccountRights(change.sid, change.rights);
      return;
    case 'put-firewall-rule':
      if (change.previous) await sys.putFirewallRule(change.previous);
      else await sys.removeFirewallRule(change.name);
      return;
    case 'removed-firewall-rule':
      await sys.putFirewallRule(change.rule);
      return;
    case 'added-aces':
      if (await sys.pathInfo(change.path)) await sys.removeAces(change.path, change.aces);
      return;
  }
}

/** Undo everything the store records; returns what could not be undone (also left in the store). */
export async function undoAll(sys: WindowsSystem, store: ManifestStore, options: { dryRun?: boolean; onUndo?: (c: Change) => void } = {}): Promise<UndoFailure[]> {
  const records = await store.load();
  const pending = pendingChanges(records).reverse();
  const failures: UndoFailure[] = [];
  const remaining: typeof records = [];
  for (const item of pending) {
    options.onUndo?.(item.change);
    if (options.dryRun) continue;
    try {
      await undoChange(sys, item.change);
      await store.append({ kind: 'undone', seq: item.seq });
    } catch (e) {
      if (isGone(e)) {
        await store.append({ kind: 'undone', seq: item.seq });
        continue;
      }
      failures.push({ change: item.change, error: e instanceof Error ? e.message : String(e) });
      remaining.push({ kind: 'intent', seq: item.seq, change: item.change, at: new Date().toISOString() }, { kind: 'done', seq: item.seq });
    }
  }
  if (!options.dryRun) await store.replace(remaining.sort((a, b) => a.seq - b.seq));
  return failures;
}
