// Per-command preparation, unelevated: make the ACL state the command plan asks for. Idempotent and
// cheap when nothing changed (only the explicit ACEs of each listed path are read); each change is
// journaled in the user's manifest first so that `cordon uninstall` can remove it.

import path from 'node:path';
import type { CommandPlan } from '../plan.js';
import { Journal, type ManifestStore } from './manifest.js';
import { missingAces } from './setup.js';
import type { WindowsSystem } from './system.js';

const win = path.win32;

export interface PrepareReport {
  createdDirs: string[];
  stampedPaths: string[];
  /** Hard-linked files whose DACL was frozen before a grant propagated over them. */
  frozenMultiLink: string[];
  unchanged: number;
}

export async function prepareCommand(plan: CommandPlan, sys: WindowsSystem, store: ManifestStore, options: { multiLinkBudget?: number } = {}): Promise<PrepareReport> {
  const journal = await Journal.open(store);
  const report: PrepareReport = { createdDirs: [], stampedPaths: [], frozenMultiLink: [], unchanged: 0 };
  const ensureDir = async (dir: string, tree: boolean) => {
    const missing: string[] = [];
    for (let d = dir; !(await sys.pathInfo(d)); d = win.dirname(d)) {
      if (win.dirname(d) === d) throw new Error(`${dir}: the drive does not exist`);
      missing.unshift(d);
    }
    for (const d of missing) {
      await journal.record({ op: 'created-dir', path: d, ...(tree ? { tree: true } : {}) }, () => sys.createDirectory(d));
      report.createdDirs.push(d);
    }
  };
  for (const step of plan.aclSteps) {
    switch (step.kind) {
      case 'ensure-dir':
        // cordon's scratch directories are removed with their contents on uninstall; a materialised
        // protected directory only if it is still empty.
        await ensureDir(step.path, step.scratch === true);
        break;
      case 'remove-aces': {
        if (!(await sys.pathInfo(step.path))) break;
        const present = await sys.explicitAces(step.path);
        const toRemove = step.aces.filter((a) => present.some((p) => p.type === a.type && p.sid === a.sid && (p.flags & 0xf) === (a.flags & 0xf) && (p.mask & a.mask) !== 0));
        if (toRemove.length > 0) await sys.removeAces(step.path, toRemove);
        break;
      }
      case 'protect-multilink':
        // Done lazily below, only for a root whose grant is about to propagate.
        break;
      case 'add-aces': {
        if (!(await sys.pathInfo(step.path))) {
          report.unchanged += 1;
          break;
        }
        const missing = missingAces(await sys.explicitAces(step.path), step.aces);
        if (missing.length === 0) {
          report.unchanged += 1;
          break;
        }
        const isRoot = plan.aclSteps.some((s) => s.kind === 'protect-multilink' && s.root.toUpperCase() === step.path.toUpperCase());
        if (isRoot && missing.some((a) => (a.flags & 0x3) !== 0)) {
          // Propagation rewrites the DACL of every name under the root, and a hard-linked file has
          // one DACL for all its names: freeze it first so a file outside the root that merely has a
          // name inside it does not become writable.
          for (const f of await sys.multiLinkFiles(step.path, options.multiLinkBudget ?? 500000)) {
            await sys.protectInheritance(f);
            report.frozenMultiLink.push(f);
          }
        }
        await journal.record({ op: 'added-aces', path: step.path, aces: missing }, () => sys.addAces(step.path, missing));
        report.stampedPaths.push(step.path);
        break;
      }
    }
  }
  return report;
}
