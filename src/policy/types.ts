// The policy model shared by every platform. Policy code never touches the OS except for the
// resolver (src/policy/resolve.ts), which reads the filesystem to canonicalise paths.

/** How much the sandboxed command may change. */
export type Mode = 'read-only' | 'workspace-write' | 'full-access';
export const MODES: readonly Mode[] = ['read-only', 'workspace-write', 'full-access'];

/** off: no network at all; allow-list: only through cordon's proxy, by domain; full: unrestricted. */
export type NetworkMode = 'off' | 'allow-list' | 'full';
export const NETWORK_MODES: readonly NetworkMode[] = ['off', 'allow-list', 'full'];

/** Which host environment variables a command starts from (before scrubbing). */
export type EnvInherit = 'all' | 'core' | 'none';
export const ENV_INHERIT: readonly EnvInherit[] = ['all', 'core', 'none'];

/**
 * A policy as a user writes it: a policy file, the user config, CLI flags or a library object.
 * Every field is optional; sources are merged (CLI flags > --policy file > user config > defaults).
 * Paths may be absolute, `~/…`, or relative to the workspace.
 */
export interface PolicyInput {
  mode?: Mode;
  /** The directory the agent works on; default: the current directory. */
  workspace?: string;
  filesystem?: {
    /** Extra writable roots besides the workspace. */
    write?: string[];
    /** Paths that stay read-only even inside writable roots (added to the built-in list). */
    protect?: string[];
    /** Paths that are unreadable (added to the built-in list). */
    denyRead?: string[];
    /** Paths re-opened for reading although a deny-read entry (built-in or not) covers them. */
    allowRead?: string[];
  };
  network?: {
    mode?: NetworkMode;
    /** Domain patterns: `example.com`, `*.example.com` (strict subdomains), `host:443`, `[::1]:8080`, `10.0.0.5`. */
    allow?: string[];
    /** Same syntax; deny wins over allow. */
    deny?: string[];
    /** Make plain TCP to allowed names work without proxy settings (in-sandbox resolver + relay). */
    transparent?: boolean;
  };
  /** Host unix sockets exposed by path (e.g. `$SSH_AUTH_SOCK`); every other host socket is unreachable. */
  sockets?: { allow?: string[] };
  env?: {
    inherit?: EnvInherit;
    /** Name patterns (`*` wildcard, case-insensitive) removed in addition to the built-in secret patterns. */
    scrub?: string[];
    /** Name patterns kept even if a scrub pattern matches them. */
    keep?: string[];
    /** Variables set inside the sandbox (win over everything else). */
    set?: Record<string, string>;
  };
  limits?: {
    /** Wall-clock limit: seconds, or a string such as `90s`, `10m`, `1h`. */
    timeout?: number | string;
    /** Memory limit: bytes, or a string such as `512M`, `2G`. */
    memory?: number | string;
    /** Maximum number of processes/threads. */
    pids?: number;
    /** CPU quota in cores (e.g. 1.5). */
    cpu?: number;
  };
  /** Accept a weaker tier (and say so on stderr) when a layer the policy needs is unavailable. */
  allowReduced?: boolean;
}

/** Why a path is protected (read-only inside a writable root). */
export type ProtectReason =
  | 'git-hooks'
  | 'git-config'
  | 'runs-code-later'
  | 'cordon-config'
  | 'user';

export interface ProtectedPath {
  /** Canonical absolute path. */
  path: string;
  /** What it is (or would be, when it does not exist yet). */
  kind: 'dir' | 'file';
  exists: boolean;
  reason: ProtectReason;
  /** The writable root it lies in. */
  root: string;
}

export type DenyReason = 'secret' | 'host-socket' | 'user';

export interface DeniedPath {
  path: string;
  kind: 'dir' | 'file' | 'socket';
  reason: DenyReason;
}

export interface WritableRoot {
  path: string;
  /** git-metadata: the git dir of a linked worktree or submodule, outside the workspace. */
  reason: 'workspace' | 'user' | 'tmp' | 'git-metadata';
}

export interface ResolvedNetwork {
  mode: NetworkMode;
  allow: string[];
  deny: string[];
  transparent: boolean;
}

export interface ResolvedEnv {
  /** The exact environment the command starts with. */
  vars: Record<string, string>;
  /** Names removed from the inherited environment (never their values). */
  removed: string[];
}

export interface ResolvedLimits {
  timeoutMs: number | null;
  memoryBytes: number | null;
  pids: number | null;
  cpu: number | null;
}

/**
 * A policy with every path canonical and absolute and every default applied: the input of the
 * per-platform compilers. Produced by resolvePolicy(); plain data (JSON-serialisable).
 */
export interface ResolvedPolicy {
  mode: Mode;
  workspace: string;
  /** Where the command starts. */
  cwd: string;
  writableRoots: WritableRoot[];
  protected: ProtectedPath[];
  denyRead: DeniedPath[];
  /** Host unix sockets explicitly exposed. */
  exposedSockets: string[];
  network: ResolvedNetwork;
  env: ResolvedEnv;
  limits: ResolvedLimits;
  allowReduced: boolean;
  /** Where the policy came from, strongest first (e.g. `flags`, `/path/policy.json`, `defaults`). */
  sources: string[];
  /** Things the user should know (e.g. a writable root that is a symlink to elsewhere). */
  warnings: string[];
}
