// Turns a merged PolicyInput into a ResolvedPolicy: every path absolute and canonical, every
// default applied. It reads the filesystem (realpath, git dirs) but never writes to it; what the
// enforcer must create (an empty `.git/hooks`) is part of the plan, not done here.
import { existsSync, lstatSync, realpathSync, statSync } from 'node:fs';
import { basename, dirname, isAbsolute, join, resolve, sep } from 'node:path';
import { GIT_PROTECTED_ENTRIES, RUNS_CODE_LATER, SECRET_HOME_PATHS, DEFAULT_LIMITS } from './defaults.js';
import { computeEnv } from './env.js';
import { PolicyError } from './errors.js';
import { findGitDirs, type GitScanStats } from './gitdirs.js';
import type { DeniedPath, PolicyInput, ProtectedPath, ResolvedPolicy, WritableRoot } from './types.js';
import { parseDuration, parseSize } from './validate.js';

export interface ResolveContext {
  cwd: string;
  home: string;
  env: Record<string, string | undefined>;
  /** Physical memory, for the default memory limit. */
  totalMemoryBytes: number;
  /** Files the policy came from: they must not lie where the sandbox can write. */
  policyFile?: string | null;
  userConfigFile?: string | null;
  sources?: string[];
  /** Where the git-dir scan cache lives; null disables caching. */
  cacheDir?: string | null;
}

export interface ResolveResult {
  policy: ResolvedPolicy;
  gitScan: GitScanStats[];
}

export function isUnder(path: string, root: string): boolean {
  if (root === '/') return path.startsWith('/');
  return path === root || path.startsWith(root + sep);
}

/** `~`, `~/x`, `$VAR/x`, `${VAR}/x`, absolute, or relative to `base` (which it may not escape). */
export function expandPath(raw: string, field: string, ctx: { home: string; env: Record<string, string | undefined>; base: string }): string {
  let p = raw;
  if (p === '~' || p.startsWith('~/')) p = ctx.home + p.slice(1);
  else if (p.startsWith('~')) throw new PolicyError(`${field}: ${JSON.stringify(raw)}: ~user paths are not supported; write the absolute path`);
  const v = /^\$(?:\{([A-Za-z_][A-Za-z0-9_]*)\}|([A-Za-z_][A-Za-z0-9_]*))/.exec(p);
  if (v) {
    const name = v[1] ?? v[2]!;
    const value = ctx.env[name];
    if (!value) throw new PolicyError(`${field}: ${JSON.stringify(raw)}: $${name} is not set; set it or write the path out`);
    p = value + p.slice(v[0].length);
  }
  if (isAbsolute(p)) return resolve(p);
  const abs = resolve(ctx.base, p);
  if (!isUnder(abs, ctx.base))
    throw new PolicyError(`${field}: ${JSON.stringify(raw)} escapes the workspace; write an absolute path or one inside the workspace`);
  return abs;
}

/** Canonical form of a path that may not exist: the existing prefix is resolved, the rest kept. */
export function canonical(p: string): string {
  try {
    return realpathSync.native(p);
  } catch {
    const parent = dirname(p);
    return parent === p ? p : join(canonical(parent), basename(p));
  }
}

function exists(p: string): boolean {
  try {
    lstatSync(p);
    return true;
  } catch {
    return false;
  }
}

function kindOf(p: string): 'dir' | 'file' | 'socket' | null {
  try {
    const st = statSync(p);
    return st.isDirectory() ? 'dir' : st.isSocket() ? 'socket' : 'file';
  } catch {
    return null;
  }
}

// Plain code-unit order: localeCompare would load ICU collation data at startup.
const byPath = (a: { path: string }, b: { path: string }) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0);

export function resolvePolicy(input: PolicyInput, ctx: ResolveContext): ResolveResult {
  const warnings: string[] = [];
  const mode = input.mode ?? 'workspace-write';
  const home = canonical(ctx.home);

  const wsRaw = input.workspace ? expandPath(input.workspace, 'workspace', { home: ctx.home, env: ctx.env, base: ctx.cwd }) : ctx.cwd;
  if (kindOf(wsRaw) !== 'dir') throw new PolicyError(`workspace: ${wsRaw} is not an existing directory; create it or pass another --workspace`);
  const workspace = canonical(wsRaw);
  if (workspace !== resolve(wsRaw)) warnings.push(`workspace ${wsRaw} is a symlink to ${workspace}; the sandbox works there`);
  const pathCtx = { home: ctx.home, env: ctx.env, base: workspace };
  const cwd = canonical(ctx.cwd);

  // Writable roots.
  const writable: WritableRoot[] = [];
  const addRoot = (path: string, reason: WritableRoot['reason']) => {
    if (!writable.some((w) => isUnder(path, w.path))) {
      for (let i = writable.length - 1; i >= 0; i--) if (isUnder(writable[i]!.path, path)) writable.splice(i, 1);
      writable.push({ path, reason });
    }
  };
  if (mode === 'full-access') addRoot('/', 'user');
  if (mode === 'workspace-write') {
    addRoot(workspace, 'workspace');
    (input.filesystem?.write ?? []).forEach((raw, i) => {
      const field = `filesystem.write[${i}]`;
      const abs = expandPath(raw, field, pathCtx);
      if (kindOf(abs) !== 'dir') throw new PolicyError(`${field}: ${abs} is not an existing directory; create it or remove the entry`);
      const real = canonical(abs);
      if (real !== abs) warnings.push(`${field}: ${abs} is a symlink to ${real}; ${real} is what becomes writable`);
      addRoot(real, 'user');
    });
  }

  // A policy must not come from where the sandbox can write.
  if (ctx.policyFile) {
    const pf = canonical(resolve(ctx.cwd, ctx.policyFile));
    const inside = writable.find((w) => isUnder(pf, w.path));
    if (inside && mode !== 'full-access')
      throw new PolicyError(`--policy: ${pf} lies inside the writable root ${inside.path}, where a sandboxed command could rewrite it; keep policy files outside (e.g. ~/.config/cordon/)`);
  }

  // Protected paths: read-only even inside writable roots.
  const protectedPaths: ProtectedPath[] = [];
  const dirCache = new Map<string, string>(writable.map((w) => [w.path, w.path]));
  const canonicalDir = (d: string) => {
    let c = dirCache.get(d);
    if (c === undefined) dirCache.set(d, (c = canonical(d)));
    return c;
  };
  const gitScan: GitScanStats[] = [];
  const protect = (path: string, kind: 'dir' | 'file', reason: ProtectedPath['reason']) => {
    // An absent name has no symlinks of its own: resolving its (usually known) parent is enough.
    const real = exists(path) ? canonical(path) : join(canonicalDir(dirname(path)), basename(path));
    const root = writable.find((w) => w.path !== '/' && isUnder(real, w.path));
    if (!root || protectedPaths.some((p) => p.path === real)) return;
    const actual = kindOf(real);
    protectedPaths.push({ path: real, kind: actual === 'dir' ? 'dir' : actual ? 'file' : kind, exists: actual !== null, reason, root: root.path });
  };
  if (mode === 'workspace-write') {
    for (const root of writable.filter((w) => w.path !== '/')) {
      const { gitDirs, external, gitFiles, stats } = findGitDirs(root.path, ctx.cacheDir ?? null);
      gitScan.push(stats);
      // Linked worktrees and submodules keep their metadata elsewhere: git must be able to commit
      // there, so those git dirs become writable too (their hooks and config stay protected).
      for (const ext of external) if (root.reason === 'workspace') addRoot(ext, 'git-metadata');
      for (const gitDir of gitDirs) {
        protect(join(gitDir, GIT_PROTECTED_ENTRIES.hooks), 'dir', 'git-hooks');
        protect(join(gitDir, GIT_PROTECTED_ENTRIES.config), 'file', 'git-config');
        if (existsSync(join(gitDir, GIT_PROTECTED_ENTRIES.worktreeConfig))) protect(join(gitDir, GIT_PROTECTED_ENTRIES.worktreeConfig), 'file', 'git-config');
        // Present in worktrees (pinned read-only); elsewhere it cannot be pinned without a
        // placeholder, so its appearance is reported instead.
        protect(join(gitDir, GIT_PROTECTED_ENTRIES.commonDir), 'file', 'git-config');
      }
      for (const f of gitFiles) protect(f, 'file', 'git-config');
    }
    for (const root of writable.filter((w) => w.path !== '/' && w.reason !== 'git-metadata')) {
      for (const entry of RUNS_CODE_LATER) {
        const p = join(root.path, entry.name);
        // Missing ones cannot be pinned without leaving placeholders in the user's tree; the
        // enforcer reports them if a command creates them.
        protect(p, entry.kind, 'runs-code-later');
      }
    }
    (input.filesystem?.protect ?? []).forEach((raw, i) => protect(expandPath(raw, `filesystem.protect[${i}]`, pathCtx), 'file', 'user'));
    for (const f of [ctx.userConfigFile, ctx.userConfigFile ? dirname(ctx.userConfigFile) : null]) if (f) protect(f, 'file', 'cordon-config');
  }

  // Deny-read: secrets under home plus the user's entries, minus allowRead.
  const allowRead = (input.filesystem?.allowRead ?? []).map((raw, i) => canonical(expandPath(raw, `filesystem.allowRead[${i}]`, pathCtx)));
  const denyRead: DeniedPath[] = [];
  const deny = (path: string, reason: DeniedPath['reason']) => {
    const kind = kindOf(path); // most defaults do not exist: skip them before resolving symlinks
    if (!kind) return;
    const real = canonical(path);
    if ( allowRead.some((a) => isUnder(real, a)) || denyRead.some((d) => isUnder(real, d.path))) return;
    for (let i = denyRead.length - 1; i >= 0; i--) if (isUnder(denyRead[i]!.path, real)) denyRead.splice(i, 1);
    denyRead.push({ path: real, kind, reason });
  };
  if (mode !== 'full-access') for (const rel of SECRET_HOME_PATHS) deny(join(home, rel), 'secret');
  (input.filesystem?.denyRead ?? []).forEach((raw, i) => deny(expandPath(raw, `filesystem.denyRead[${i}]`, pathCtx), 'user'));

  // Host sockets exposed by path.
  const exposedSockets = (input.sockets?.allow ?? []).map((raw, i) => {
    const field = `sockets.allow[${i}]`;
    const abs = canonical(expandPath(raw, field, pathCtx));
    let st;
    try {
      st = lstatSync(abs);
    } catch {
      throw new PolicyError(`${field}: ${abs} does not exist; start the service or remove the entry`);
    }
    if (!st.isSocket()) throw new PolicyError(`${field}: ${abs} is not a unix socket; give the socket's path`);
    return abs;
  });

  // Network.
  const netMode = input.network?.mode ?? (input.network?.allow?.length ? 'allow-list' : mode === 'full-access' ? 'full' : 'off');
  if (netMode !== 'allow-list' && input.network?.allow?.length)
    throw new PolicyError(`network.allow: domains are allowed only with network mode allow-list (it is ${netMode}); drop network.mode or set it to allow-list`);

  // Environment.
  const env = computeEnv(ctx.env, {
    inherit: input.env?.inherit ?? 'all',
    scrub: input.env?.scrub ?? [],
    keep: input.env?.keep ?? [],
    set: input.env?.set ?? {},
  });

  // Limits.
  const limits = {
    timeoutMs: input.limits?.timeout !== undefined ? parseDuration(input.limits.timeout) : DEFAULT_LIMITS.timeoutSeconds,
    memoryBytes: input.limits?.memory !== undefined ? parseSize(input.limits.memory) : Math.floor(ctx.totalMemoryBytes * DEFAULT_LIMITS.memoryFraction),
    pids: input.limits?.pids ?? DEFAULT_LIMITS.pids,
    cpu: input.limits?.cpu ?? null,
  };

  const policy: ResolvedPolicy = {
    mode,
    workspace,
    cwd,
    writableRoots: writable,
    protected: protectedPaths.sort(byPath),
    denyRead: denyRead.sort(byPath),
    exposedSockets,
    network: { mode: netMode, allow: input.network?.allow ?? [], deny: input.network?.deny ?? [], transparent: input.network?.transparent ?? false },
    env,
    limits,
    allowReduced: input.allowReduced ?? false,
    sources: ctx.sources ?? ['defaults'],
    warnings,
  };
  return { policy, gitScan };
}

/** Paths inside writable roots, relative for display. */
export function displayPath(p: string, home: string): string {
  return isUnder(p, home) && home !== '/' ? '~' + p.slice(home.length) : p;
}
