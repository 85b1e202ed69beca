// A comparable picture of a model machine: accounts, memberships, rights, hidden flags, firewall
// rules, profiles, and every name on every volume with its owner and DACL.

import { sdToSddl } from '../../src/windows/acl.js';
import type { Machine } from '../../src/windows/model/machine.js';
import type { FsNode } from '../../src/windows/model/ntfs.js';

export function snapshot(machine: Machine, ignore: (path: string) => boolean = () => false): Record<string, string> {
  const out: Record<string, string> = {};
  for (const u of machine.users.values()) out[`user:${u.name}`] = `${u.sid} hidden=${u.hidden}`;
  for (const g of machine.groups.values()) out[`group:${g.name}`] = `${g.sid} members=${[...g.members].sort().join(',')}`;
  for (const [sid, rights] of machine.accountRights) out[`rights:${sid}`] = [...rights].sort().join(',');
  for (const r of machine.firewallRules) out[`fw:${r.name}`] = JSON.stringify(r);
  out.profiles = [...machine.profiles].sort().join(',');
  for (const [drive, volume] of machine.fs.volumes) {
    const walk = (node: FsNode, path: string) => {
      if (!ignore(path)) out[`fs:${path}`] = `${node.kind}${node.reparse ? ` ->${node.reparse.target}` : ''} ${sdToSddl(node.sd)}`;
      if (node.kind !== 'dir' || node.reparse) return;
      for (const e of node.children!.values()) walk(e.node, path.endsWith('\\') ? path + e.name : `${path}\\${e.name}`);
    };
    walk(volume.root, `${drive}:\\`);
  }
  return out;
}

/** Keys whose values differ (or exist on one side only). */
export function diff(a: Record<string, string>, b: Record<string, string>): string[] {
  const keys = new Set([...Object.keys(a), ...Object.keys(b)]);
  return [...keys].filter((k) => a[k] !== b[k]).sort();
}
