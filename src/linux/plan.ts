// Compiles a ResolvedPolicy into the Linux plan: the bubblewrap argument list (mount view and
// namespaces), the Landlock rules and seccomp program for the launcher, and the command's
// environment. Pure: host facts come in as data; nothing here touches the OS.
import { isUnder } from '../policy/resolve.js';
import type { ResolvedPolicy } from '../policy/types.js';
import type { LinuxHostFacts } from './host.js';
import type { LandlockPlan, Listener, SeccompPlan } from './launcher-protocol.js';
import type { LimitsPlan } from './limits/plan.js';
import type { BridgePlan } from '../network/bridge-plan.js';

/** Landlock access rights (include/uapi/linux/landlock.h). */
export const LL = {
  EXECUTE: 1n << 0n, WRITE_FILE: 1n << 1n, READ_FILE: 1n << 2n, READ_DIR: 1n << 3n,
  REMOVE_DIR: 1n << 4n, REMOVE_FILE: 1n << 5n, MAKE_CHAR: 1n << 6n, MAKE_DIR: 1n << 7n,
  MAKE_REG: 1n << 8n, MAKE_SOCK: 1n << 9n, MAKE_FIFO: 1n << 10n, MAKE_BLOCK: 1n << 11n,
  MAKE_SYM: 1n << 12n, REFER: 1n << 13n, TRUNCATE: 1n << 14n, IOCTL_DEV: 1n << 15n,
  NET_BIND_TCP: 1n << 0n, NET_CONNECT_TCP: 1n << 1n,
  SCOPE_ABSTRACT_UNIX: 1n << 0n, SCOPE_SIGNAL: 1n << 1n,
} as const;
/** Every right that changes the filesystem; reads stay with the mount view. */
export const LL_WRITE = LL.WRITE_FILE | LL.REMOVE_DIR | LL.REMOVE_FILE | LL.MAKE_CHAR | LL.MAKE_DIR | LL.MAKE_REG |
  LL.MAKE_SOCK | LL.MAKE_FIFO | LL.MAKE_BLOCK | LL.MAKE_SYM | LL.REFER | LL.TRUNCATE | LL.IOCTL_DEV;

/** The file descriptor (in bwrap's stdio) from which empty mask files are read. */
export const EMPTY_FD = 4;
/** The file descriptor (in bwrap's stdio) carrying the sandbox's resolv.conf (transparent network). */
export const RESOLV_FD = 6;

/** Listener ids the launcher reports back (launcher-protocol Listener.id). */
export const LISTENER = { proxy: 1, dns: 2, transparentBase: 100 } as const;

type MountKind = 'rw' | 'pin' | 'ro' | 'tmpfs' | 'dir' | 'mask-dir' | 'mask-file' | 'resolv';
interface MountOp { path: string; kind: MountKind; source?: string }
/** For the same path, later kinds win (they are mounted last). */
const KIND_ORDER: MountKind[] = ['tmpfs', 'dir', 'rw', 'pin', 'ro', 'mask-dir', 'mask-file', 'resolv'];

export interface LayerReport {
  layer: string;
  active: boolean;
  detail: string;
}

export interface LinuxPlanOptions {
  /** Apply Landlock in the launcher (default true). */
  landlock?: boolean;
  /** Seccomp plan produced by the seccomp compiler, or null. */
  seccomp?: SeccompPlan | null;
  /** Listening sockets the launcher creates in the sandbox's network namespace. */
  listeners?: Listener[];
  /** Extra variables for the sandbox (proxy settings). */
  extraEnv?: Record<string, string>;
  /** How resource limits are enforced on this host (limits/plan.ts). */
  limits?: LimitsPlan;
  /** allow-list network: the proxy bridge (network/bridge-plan.ts). */
  bridge?: BridgePlan | null;
  /** Test hook: bind these host paths read-write although the policy does not allow it. */
  unsafeExtraWritableBinds?: string[];
}

export interface LinuxPlan {
  /** full: bubblewrap namespaces + launcher; reduced: the launcher alone (Landlock + seccomp). */
  tier: 'full' | 'reduced';
  /** bwrap arguments up to (not including) `--` and the launcher (empty in the reduced tier). */
  bwrapArgs: string[];
  /** Reduced tier: the private temp directory cordon creates for the command and removes after. */
  tmpDir?: string;
  /**
   * Set when cordon creates the network namespace itself before bwrap (the transparent path: only
   * the namespace's owner can add a loopback address and open low ports to everyone).
   */
  netns: { loAlias: string } | null;
  /** Contents for the sandbox's resolv.conf, read by bwrap from RESOLV_FD. */
  resolvConf: string | null;
  /** Protected directories that do not exist and must be created (empty) before the sandbox starts. */
  ensureDirs: string[];
  /** Protected paths that are absent and cannot be pinned; reported if a command creates them. */
  watchCreated: string[];
  landlock: LandlockPlan | null;
  seccomp: SeccompPlan | null;
  listeners: Listener[];
  rlimits: { resource: number; soft: bigint; hard: bigint }[];
  /** The resource-limit plan (cgroups to create, rlimits); null when nothing is limited. */
  limits: LimitsPlan | null;
  /** The command's environment. */
  env: Record<string, string>;
  cwd: string;
  layers: LayerReport[];
}

function depth(p: string): number {
  return p === '/' ? 0 : p.split('/').length - 1;
}

function sortMounts(ops: MountOp[]): MountOp[] {
  // Parents before children, so a more specific mount is never hidden by a broader one.
  return ops
    .map((op, i) => ({ op, i }))
    .sort((a, b) => depth(a.op.path) - depth(b.op.path) || (a.op.path === b.op.path ? KIND_ORDER.indexOf(a.op.kind) - KIND_ORDER.indexOf(b.op.kind) : 0) || a.i - b.i)
    .map((x) => x.op);
}

function mountArgs(op: MountOp, tmpfsBytes: number | null): string[] {
  // Without a memory cgroup, a private tmpfs could fill RAM unnoticed: cap its size.
  const size = tmpfsBytes ? ['--size', String(tmpfsBytes)] : [];
  switch (op.kind) {
    case 'rw':
    case 'pin':
      return ['--bind', op.source ?? op.path, op.path];
    case 'ro':
      return ['--ro-bind', op.source ?? op.path, op.path];
    case 'tmpfs':
      return [...size, '--tmpfs', op.path];
    case 'dir':
      return ['--perms', '0700', '--dir', op.path];
    case 'mask-dir':
      return ['--perms', '0000', '--tmpfs', op.path, '--remount-ro', op.path];
    case 'mask-file':
      return ['--perms', '0000', '--ro-bind-data', String(EMPTY_FD), op.path];
    case 'resolv':
      return ['--perms', '0644', '--ro-bind-data', String(RESOLV_FD), op.path];
  }
}

/** Directories of host services hidden wholesale: their sockets must not be reachable. */
const SERVICE_DIRS = ['/run', '/var/run', '/tmp', '/var/tmp', '/dev/shm'];

export function compileLinuxPlan(policy: ResolvedPolicy, host: LinuxHostFacts, opts: LinuxPlanOptions = {}): LinuxPlan {
  const fullAccess = policy.mode === 'full-access';
  const roots = policy.writableRoots.map((w) => w.path);
  const ops: MountOp[] = [];
  const runtimeDir = `/run/user/${host.uid}`;

  if (!fullAccess) {
    // Private, empty temp and runtime directories: host services' sockets live there.
    ops.push({ path: '/tmp', kind: 'tmpfs' }, { path: '/var/tmp', kind: 'tmpfs' }, { path: '/run', kind: 'tmpfs' }, { path: '/dev/shm', kind: 'tmpfs' });
    ops.push({ path: runtimeDir, kind: 'dir' });
    // DNS configuration often lives under /run; only needed when the command resolves names itself.
    if (policy.network.mode === 'full' && host.resolvConf && isUnder(host.resolvConf, '/run')) ops.push({ path: host.resolvConf, kind: 'ro' });
    for (const s of host.hostSockets) {
      if (SERVICE_DIRS.some((d) => isUnder(s, d)) || policy.exposedSockets.includes(s)) continue;
      if (policy.denyRead.some((d) => isUnder(s, d.path))) continue;
      ops.push({ path: s, kind: 'mask-file' });
    }
  }
  for (const root of roots) ops.push({ path: root, kind: 'rw' });
  for (const extra of opts.unsafeExtraWritableBinds ?? []) ops.push({ path: extra, kind: 'rw' });

  const ensureDirs: string[] = [];
  const watchCreated: string[] = [];
  const pinned = new Set<string>(roots);
  for (const p of policy.protected) {
    if (!p.exists) {
      // An absent hooks directory is created empty, as `git init` would, so it can be pinned
      // read-only; anything else absent would need a placeholder in the user's tree, so it is
      // watched instead.
      if (p.reason === 'git-hooks') ensureDirs.push(p.path);
      else {
        watchCreated.push(p.path);
        continue;
      }
    }
    // Every ancestor between the writable root and the protected path becomes a mount point, so
    // it cannot be renamed away (EBUSY) and replaced by an unprotected copy.
    for (let a = p.path.slice(0, p.path.lastIndexOf('/')); a.length > p.root.length; a = a.slice(0, a.lastIndexOf('/'))) {
      if (!pinned.has(a)) {
        pinned.add(a);
        ops.push({ path: a, kind: 'pin' });
      }
    }
    ops.push({ path: p.path, kind: 'ro' });
  }
  // cordon's own code must not be rewritten by a command it runs.
  if (roots.some((r) => r !== '/' && isUnder(host.installDir, r))) ops.push({ path: host.installDir, kind: 'ro' });

  for (const d of policy.denyRead) ops.push({ path: d.path, kind: d.kind === 'dir' ? 'mask-dir' : 'mask-file' });
  for (const s of policy.exposedSockets) ops.push({ path: s, kind: 'ro' });
  if (host.launcher) ops.push({ path: host.launcher, kind: 'ro' });

  const net = policy.network.mode;
  const bridge = net === 'allow-list' ? opts.bridge ?? null : null;
  if (net === 'allow-list' && !bridge) throw new Error('the allow-list network needs a bridge plan');
  const transparent = bridge?.transparent ?? null;
  // The resolver's address lives where /etc/resolv.conf really points (often under /run).
  if (transparent && host.resolvConf) ops.push({ path: host.resolvConf, kind: 'resolv' });
  const args = [
    '--die-with-parent',
    '--new-session',
    '--as-pid-1',
    '--unshare-user',
    '--disable-userns',
    '--unshare-pid',
    '--unshare-ipc',
    '--unshare-uts',
    '--unshare-cgroup-try',
    // With cordon's own namespace (transparent path) bwrap stays in it instead of making one.
    ...(net === 'full' || transparent ? [] : ['--unshare-net']),
    '--cap-drop', 'ALL',
    fullAccess ? '--bind' : '--ro-bind', '/', '/',
    '--dev', '/dev',
    '--proc', '/proc',
  ];
  // The sandbox must not raise its own limits: cgroup files stay read-only even in full-access mode.
  if (fullAccess) ops.push({ path: '/sys/fs/cgroup', kind: 'ro' });
  for (const op of sortMounts(ops)) args.push(...mountArgs(op, opts.limits?.tmpfsBytes ?? null));

  // Landlock: the second, independent lock on writes.
  let landlock: LandlockPlan | null = null;
  if (opts.landlock !== false && !fullAccess) {
    const rules = [
      ...roots.map((path) => ({ path, access: LL_WRITE })),
      // Private to the sandbox: its own tmpfs and /dev.
      ...['/tmp', '/var/tmp', '/dev', '/run'].map((path) => ({ path, access: LL_WRITE })),
    ];
    landlock = {
      handledFs: LL_WRITE,
      handledNet: 0n,
      scoped: LL.SCOPE_ABSTRACT_UNIX | LL.SCOPE_SIGNAL,
      rules,
      ports: [],
      requiredAbi: policy.allowReduced ? 0 : 1,
    };
  }

  const seccomp = opts.seccomp
    ? {
        ...opts.seccomp,
        okPrefixes: [...roots, '/tmp', '/var/tmp', '/dev', '/run', '/proc'],
        badPrefixes: policy.protected.map((p) => p.path),
      }
    : null;

  const rlimits: LinuxPlan['rlimits'] = opts.limits?.rlimits ?? [];

  const env: Record<string, string> = {
    ...policy.env.vars,
    ...(fullAccess ? {} : { TMPDIR: '/tmp', XDG_RUNTIME_DIR: runtimeDir }),
    CORDON_SANDBOX: '1',
    ...(net === 'off' ? { CORDON_NETWORK: 'off' } : {}),
    ...bridge?.env,
    ...opts.extraEnv,
  };
  if (bridge) for (const k of Object.keys(env)) if (/^(https?|all|no)_proxy$/i.test(k) && !(k in bridge.env)) delete env[k];
  if (!fullAccess) for (const k of ['TEMP', 'TMP']) if (k in env) env[k] = '/tmp';

  const layers: LayerReport[] = [
    { layer: 'user namespace', active: true, detail: host.uid === 0 ? 'uid 0 inside is not host root: no capabilities, nested user namespaces disabled' : 'own uid mapped, no capabilities, nested user namespaces disabled' },
    { layer: 'mount view', active: true, detail: `${fullAccess ? 'host root writable' : `host root read-only, ${roots.length} writable root(s), ${policy.protected.filter((p) => p.exists || p.reason === 'git-hooks').length} protected path(s), ${policy.denyRead.length} hidden path(s)`}` },
    { layer: 'pid namespace', active: true, detail: 'the command sees only its own processes; all of them end with it' },
    {
      layer: 'network namespace',
      active: net !== 'full',
      detail:
        net === 'off'
          ? 'no network'
          : net === 'allow-list'
            ? `egress only through cordon’s proxy (${policy.network.allow.join(', ')})${transparent ? '; transparent path for tools that ignore proxy settings' : ''}`
            : 'host network (policy: full)',
    },
    { layer: 'ipc/uts/cgroup namespaces', active: true, detail: 'private SysV IPC, hostname and cgroup view' },
    { layer: 'landlock', active: !!landlock, detail: landlock ? 'writes only beneath writable roots; abstract sockets and signals scoped' : fullAccess ? 'not used in full-access mode' : 'disabled' },
    { layer: 'seccomp', active: !!seccomp, detail: seccomp ? 'dangerous syscalls denied' : 'no filter compiled' },
    { layer: 'no_new_privs', active: !!host.launcher, detail: 'set by the launcher before exec' },
    limitsLayer(opts.limits ?? null),
    { layer: 'environment', active: policy.env.removed.length > 0, detail: `${policy.env.removed.length} secret-looking variable(s) removed` },
  ];

  return {
    tier: 'full',
    bwrapArgs: args,
    ensureDirs,
    watchCreated,
    landlock,
    seccomp,
    listeners: bridge
      ? [
          { id: LISTENER.proxy, proto: 'tcp' as const, address: bridge.proxy.host, port: bridge.proxy.port },
          ...(transparent
            ? [
                { id: LISTENER.dns, proto: 'udp' as const, address: transparent.dns.host, port: transparent.dns.port },
                ...transparent.ports.map((port, i) => ({ id: LISTENER.transparentBase + i, proto: 'tcp' as const, address: '0.0.0.0', port })),
              ]
            : []),
        ]
      : opts.listeners ?? [],
    netns: transparent ? { loAlias: transparent.loopbackAddress.split('/')[0]! } : null,
    resolvConf: transparent ? transparent.resolvConf : null,
    rlimits,
    limits: opts.limits ?? null,
    env,
    cwd: policy.cwd,
    layers,
  };
}

/** The resource-limits line of the layer report: what is limited, and how. */
export function limitsLayer(limits: LimitsPlan | null): LayerReport {
  if (!limits) return { layer: 'resource limits', active: false, detail: 'none' };
  const parts: string[] = [];
  for (const [name, c] of [['memory', limits.memory], ['pids', limits.pids], ['cpu', limits.cpu]] as const) {
    if (c.value === null) continue;
    const value = name === 'memory' ? `${Math.round(c.value / 2 ** 20)} MiB` : String(c.value);
    parts.push(`${name} ${value} (${c.mechanism === 'none' ? 'not enforced' : c.mechanism}${c.scope === 'process' ? ', per process' : ''})`);
  }
  if (limits.timeoutMs) parts.push(`timeout ${limits.timeoutMs / 1000}s`);
  const active = [limits.memory, limits.pids, limits.cpu].some((c) => c.mechanism !== 'none' && c.value !== null) || !!limits.timeoutMs;
  return { layer: 'resource limits', active, detail: parts.join(', ') || 'none' };
}

/** Device files a command writes to in any tier (there is no private /dev in the reduced tier). */
const HOST_DEVICES = ['/dev/null', '/dev/zero', '/dev/full', '/dev/tty', '/dev/ptmx', '/dev/pts'];

/**
 * The reduced tier, for machines without usable user namespaces: no mount view, no namespaces.
 * Landlock is the only filesystem lock (so it is required), seccomp refuses IP sockets when the
 * network is off and every socket(AF_UNIX) (host services' sockets are not hidden), and the
 * launcher tracks the process tree itself. What it cannot do is listed in `layers`.
 */
export function compileReducedPlan(policy: ResolvedPolicy, host: LinuxHostFacts, opts: { tmpDir: string; seccomp: SeccompPlan | null; limits?: LimitsPlan }): LinuxPlan {
  if (policy.network.mode === 'allow-list')
    throw new Error('the network allow-list needs the full tier (a network namespace); user namespaces are unavailable here');
  const fullAccess = policy.mode === 'full-access';
  const roots = policy.writableRoots.map((w) => w.path);
  const landlock: LandlockPlan | null = fullAccess
    ? null
    : {
        handledFs: LL_WRITE,
        // No network namespace: with the network off, TCP bind and connect are refused outright.
        handledNet: policy.network.mode === 'off' ? LL.NET_BIND_TCP | LL.NET_CONNECT_TCP : 0n,
        scoped: LL.SCOPE_ABSTRACT_UNIX | LL.SCOPE_SIGNAL,
        rules: [
          ...roots.map((path) => ({ path, access: LL_WRITE })),
          { path: opts.tmpDir, access: LL_WRITE },
          ...HOST_DEVICES.map((path) => ({ path, access: LL.WRITE_FILE | LL.TRUNCATE | LL.IOCTL_DEV })),
        ],
        ports: [],
        requiredAbi: 1,
      };
  const seccomp = opts.seccomp ? { ...opts.seccomp, okPrefixes: [...roots, opts.tmpDir, '/dev', '/proc'], badPrefixes: [] } : null;
  const env: Record<string, string> = { ...policy.env.vars, TMPDIR: opts.tmpDir, CORDON_SANDBOX: '1', ...(policy.network.mode === 'off' ? { CORDON_NETWORK: 'off' } : {}) };
  for (const k of ['TEMP', 'TMP']) if (k in env) env[k] = opts.tmpDir;
  const off = (layer: string, detail: string): LayerReport => ({ layer, active: false, detail });
  return {
    tier: 'reduced',
    bwrapArgs: [],
    tmpDir: opts.tmpDir,
    netns: null,
    resolvConf: null,
    ensureDirs: [],
    watchCreated: policy.protected.map((p) => p.path),
    landlock,
    seccomp,
    listeners: [],
    // Without a user namespace RLIMIT_NPROC would count every process of the user, not the sandbox's.
    rlimits: (opts.limits?.rlimits ?? []).filter((r) => r.resource !== 6),
    limits: opts.limits ?? null,
    env,
    cwd: policy.cwd,
    layers: [
      off('user namespace', 'unavailable on this machine (reduced tier)'),
      off('mount view', 'not enforced: protected paths inside writable roots and hidden (deny-read) paths are NOT protected'),
      off('pid namespace', 'none: the launcher tracks the command’s descendants and kills them at the end'),
      off('network namespace', policy.network.mode === 'off' ? 'none: Landlock refuses TCP and seccomp refuses IP and unix sockets instead' : 'host network (policy: full)'),
      { layer: 'landlock', active: !!landlock, detail: landlock ? 'writes only beneath writable roots and a private temp dir; signals and abstract sockets scoped' : 'not used in full-access mode' },
      { layer: 'seccomp', active: !!seccomp, detail: seccomp ? 'dangerous syscalls denied; socket(AF_UNIX) refused (host services’ sockets are not hidden)' : 'no filter compiled' },
      { layer: 'no_new_privs', active: true, detail: 'set by the launcher before exec' },
      limitsLayer(opts.limits ?? null),
      { layer: 'environment', active: policy.env.removed.length > 0, detail: `${policy.env.removed.length} secret-looking variable(s) removed` },
    ],
  };
}
