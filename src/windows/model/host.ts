// The resolver's view of the model machine: what the real user's process would see on disk.

import type { WindowsHost } from '../resolve.js';
import type { Machine } from './machine.js';

export function modelHost(machine: Machine, env: Record<string, string>, cwd: string, totalMemoryBytes = 16 * 1024 ** 3): WindowsHost {
  const fs = machine.fs;
  return {
    env,
    cwd,
    totalMemoryBytes,
    stat(p) {
      const st = fs.stat(p, true);
      return st ? { kind: st.kind } : null;
    },
    lstat(p) {
      const st = fs.stat(p, false);
      return st ? { kind: st.kind, reparse: st.reparse !== undefined } : null;
    },
    realPath(p) {
      return fs.realPath(p);
    },
    list(p) {
      return fs.list(p).map((e) => ({ name: e.name, kind: e.kind, reparse: e.reparse !== undefined }));
    },
    readText(p) {
      const node = fs.stat(p, true) ? fs.nodeAt(p, true) : undefined;
      return node && node.kind === 'file' ? node.data : null;
    },
  };
}
