// Says which rule of a resolved policy stopped an operation, in words an agent can act on. Pure.
import { displayPath, isUnder } from './resolve.js';
import type { ResolvedPolicy } from './types.js';

export type Violation =
  | { kind: 'write'; path: string; operation: string; rule: 'protected' | 'outside-writable-roots' | 'read-only-mode' | 'hidden'; message: string }
  | { kind: 'syscall'; syscall: string; message: string }
  | { kind: 'network'; host: string; port: number; rule: string; message: string };

const PROTECT_WHY: Record<string, string> = {
  'git-hooks': 'git hooks run on your next git command',
  'git-config': 'git config can make git run programs',
  'runs-code-later': 'your shell or editor runs it later',
  'cordon-config': "cordon's own configuration",
  user: 'protected by your policy',
};

export function explainWrite(policy: ResolvedPolicy, path: string, operation: string, home: string): Violation {
  const shown = displayPath(path, home);
  const prot = policy.protected.find((p) => isUnder(path, p.path));
  if (prot)
    return { kind: 'write', path, operation, rule: 'protected', message: `denied write to ${shown} (protected: ${PROTECT_WHY[prot.reason] ?? prot.reason})` };
  const hidden = policy.denyRead.find((d) => isUnder(path, d.path));
  if (hidden) return { kind: 'write', path, operation, rule: 'hidden', message: `denied write to ${shown} (hidden path: ${displayPath(hidden.path, home)})` };
  if (policy.mode === 'read-only')
    return { kind: 'write', path, operation, rule: 'read-only-mode', message: `denied write to ${shown} (read-only mode; use --mode workspace-write)` };
  // Suggest the narrowest directory that would do: the one being created, else the parent —
  // never the home directory or / as a whole.
  const dir = /^mkdir/.test(operation) ? path : parentOf(path);
  const broad = dir === '/' || dir === home || dir === parentOf(home);
  const hint = broad ? '' : `; add --write ${displayPath(dir, home)} if the command needs it${/^mkdir/.test(operation) ? ' (create it first)' : ''}`;
  return { kind: 'write', path, operation, rule: 'outside-writable-roots', message: `denied write to ${shown} (outside writable roots${hint})` };
}

function parentOf(path: string): string {
  const i = path.lastIndexOf('/');
  return i > 0 ? path.slice(0, i) : '/';
}

export function explainSyscall(name: string): Violation {
  return { kind: 'syscall', syscall: name, message: `denied system call ${name} (blocked by the sandbox's seccomp filter)` };
}
