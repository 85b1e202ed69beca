// Finds every git directory inside a writable root: the root's own, nested repositories at any
// depth, submodules (`.git` files and `.git/modules/*`) and linked worktrees. The result decides
// which hooks/config stay read-only, so it must be complete; walking a large tree on every command
// is too slow, so the walk is cached per root and revalidated incrementally: a new `.git` entry
// changes its directory's mtime, so only directories whose mtime moved are read again.
import { lstatSync, mkdirSync, readdirSync, readFileSync, renameSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';

/** Directories never descended into: they hold no user repositories and can be huge. */
const SKIP_DIRS = new Set(['node_modules']);
/** A directory modified this close to a scan may have changed after it was read (coarse timestamps). */
const RACY_NS = 50_000_000n;
const CACHE_VERSION = 1;

interface DirEntry {
  mtime: string; // ns, as a string so the cache is JSON
  subdirs: string[];
  git: 'dir' | 'file' | null;
}

interface ScanCache {
  version: number;
  root: string;
  dirs: Record<string, DirEntry>;
}

export interface GitScanStats {
  dirsKnown: number;
  dirsRead: number;
  dirsStatted: number;
  fromCache: boolean;
}

export interface GitDirs {
  /** Every git directory (holding HEAD), canonical. */
  gitDirs: string[];
  /** Common dirs of linked worktrees / submodule gitdirs that lie outside the scanned root. */
  external: string[];
  /** `.git` files (worktrees, submodules): rewriting one points git at other hooks and config. */
  gitFiles: string[];
  stats: GitScanStats;
}

function readDir(abs: string, racyBefore: bigint): DirEntry | null {
  let st;
  try {
    st = statSync(abs, { bigint: true });
  } catch {
    return null;
  }
  let entries;
  try {
    entries = readdirSync(abs, { withFileTypes: true });
  } catch {
    return { mtime: '0', subdirs: [], git: null }; // unreadable: nothing we could protect there either
  }
  const subdirs: string[] = [];
  let git: DirEntry['git'] = null;
  for (const e of entries) {
    if (e.name === '.git') git = e.isDirectory() ? 'dir' : e.isFile() ? 'file' : null;
    else if (e.isDirectory() && !SKIP_DIRS.has(e.name)) subdirs.push(e.name);
  }
  // A racily fresh mtime is stored as unknown so the next validation reads the directory again.
  return { mtime: st.mtimeNs >= racyBefore ? '0' : st.mtimeNs.toString(), subdirs, git };
}

/** A short stable name for a root (not a security boundary: the file also records the root). */
function fnv1a(s: string): string {
  let h = 0xcbf29ce484222325n;
  for (const c of Buffer.from(s)) h = BigInt.asUintN(64, (h ^ BigInt(c)) * 0x100000001b3n);
  return h.toString(16).padStart(16, '0');
}

function cacheFile(cacheDir: string, root: string): string {
  return join(cacheDir, `gitdirs-${fnv1a(root)}.json`);
}

function loadCache(file: string, root: string): ScanCache | null {
  try {
    const c = JSON.parse(readFileSync(file, 'utf8')) as ScanCache;
    return c.version === CACHE_VERSION && c.root === root && c.dirs && typeof c.dirs === 'object' ? c : null;
  } catch {
    return null;
  }
}

function saveCache(file: string, cache: ScanCache): void {
  try {
    mkdirSync(dirname(file), { recursive: true, mode: 0o700 });
    const tmp = `${file}.${process.pid}.tmp`;
    writeFileSync(tmp, JSON.stringify(cache), { mode: 0o600 });
    renameSync(tmp, file);
  } catch {
    // A cache that cannot be written only costs time.
  }
}

/** Walks (or revalidates) the directory tree of `root` and returns the per-directory index. */
function scanTree(root: string, cacheDir: string | null): { dirs: Record<string, DirEntry>; stats: GitScanStats } {
  const file = cacheDir ? cacheFile(cacheDir, root) : null;
  const cached = file ? loadCache(file, root) : null;
  const racyBefore = BigInt(Date.now()) * 1_000_000n - RACY_NS;
  const stats: GitScanStats = { dirsKnown: 0, dirsRead: 0, dirsStatted: 0, fromCache: !!cached };
  const old = cached?.dirs ?? {};
  const dirs: Record<string, DirEntry> = {};
  // Depth-first from the root, reusing a cached entry when its directory's mtime is unchanged.
  const stack: string[] = [''];
  while (stack.length) {
    const rel = stack.pop()!;
    const abs = rel ? join(root, rel) : root;
    let entry: DirEntry | null = null;
    const prev = old[rel];
    if (prev && prev.mtime !== '0') {
      stats.dirsStatted++;
      try {
        const st = lstatSync(abs, { bigint: true });
        if (st.isDirectory() && st.mtimeNs.toString() === prev.mtime) entry = prev;
      } catch {
        continue; // gone
      }
    }
    if (!entry) {
      stats.dirsRead++;
      entry = readDir(abs, racyBefore);
      if (!entry) continue;
    }
    dirs[rel] = entry;
    for (const s of entry.subdirs) stack.push(rel ? `${rel}/${s}` : s);
  }
  stats.dirsKnown = Object.keys(dirs).length;
  if (file && (stats.dirsRead > 0 || !cached)) saveCache(file, { version: CACHE_VERSION, root, dirs });
  return { dirs, stats };
}

/** `gitdir: <path>` of a `.git` file, resolved against the directory holding it. */
function readGitFile(gitFile: string): string | null {
  try {
    const m = /^gitdir:\s*(.+?)\s*$/m.exec(readFileSync(gitFile, 'utf8'));
    return m ? resolve(dirname(gitFile), m[1]!) : null;
  } catch {
    return null;
  }
}

function isGitDir(dir: string): boolean {
  try {
    return statSync(join(dir, 'HEAD')).isFile();
  } catch {
    return false;
  }
}

/** Submodule git dirs under `<gitDir>/modules` (nested ones and `a/b` paths included) and worktree dirs. */
function innerGitDirs(gitDir: string, out: Set<string>): void {
  const visit = (dir: string, depth: number) => {
    if (depth > 12) return;
    let names: string[];
    try {
      names = readdirSync(dir);
    } catch {
      return;
    }
    for (const name of names) {
      const d = join(dir, name);
      if (isGitDir(d)) {
        out.add(d);
        visit(join(d, 'modules'), depth + 1);
        visit(join(d, 'worktrees'), depth + 1);
      } else if (!['objects', 'refs', 'logs', 'hooks', 'info'].includes(name)) {
        visit(d, depth + 1); // a submodule path with "/" in it
      }
    }
  };
  visit(join(gitDir, 'modules'), 0);
  visit(join(gitDir, 'worktrees'), 0);
}

/** The common dir of a (worktree) git dir: where hooks and config live. */
export function commonDirOf(gitDir: string): string {
  try {
    const rel = readFileSync(join(gitDir, 'commondir'), 'utf8').trim();
    return resolve(gitDir, rel);
  } catch {
    return gitDir;
  }
}

export function findGitDirs(root: string, cacheDir: string | null): GitDirs {
  const { dirs, stats } = scanTree(root, cacheDir);
  const found = new Set<string>();
  const gitFiles: string[] = [];
  for (const [rel, entry] of Object.entries(dirs)) {
    if (!entry.git) continue;
    const at = join(root, rel, '.git');
    if (entry.git === 'file') gitFiles.push(at);
    const gitDir = entry.git === 'dir' ? at : readGitFile(at);
    if (!gitDir || !isGitDir(gitDir)) continue;
    found.add(gitDir);
    found.add(commonDirOf(gitDir));
    innerGitDirs(gitDir, found);
  }
  const inside = (p: string) => p === root || p.startsWith(root.endsWith('/') ? root : root + '/');
  const all = [...found].sort();
  return { gitDirs: all, external: all.filter((d) => !inside(d)), gitFiles: gitFiles.sort(), stats };
}
