// Facts about this Linux host that the plan depends on. Reading them is cheap (no processes are
// started); `cordon doctor` runs the slower end-to-end probes.
import { spawnSync } from 'node:child_process';
import { accessSync, constants, lstatSync, readdirSync, readFileSync, realpathSync, statSync } from 'node:fs';
import { arch } from 'node:os';
import { delimiter, dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

export interface LinuxHostFacts {
  uid: number;
  gid: number;
  arch: 'x86_64' | 'aarch64' | 'other';
  /** Absolute path of bwrap, or null when it is not installed. */
  bwrap: string | null;
  /** Absolute path of the built launcher, or null when it could not be built. */
  launcher: string | null;
  /** The directory cordon is installed in (protected when it lies inside a writable root). */
  installDir: string;
  /** Listening pathname unix sockets of host services, canonical (from /proc/net/unix). */
  hostSockets: string[];
  /** Where /etc/resolv.conf really lives (it often points into /run). */
  resolvConf: string | null;
}

/** The package root: dist/src/linux/host.js → three levels up. */
export const PACKAGE_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');

export function findExecutable(name: string, path = process.env.PATH ?? '/usr/bin:/bin'): string | null {
  for (const dir of path.split(delimiter)) {
    if (!dir) continue;
    const candidate = join(dir, name);
    try {
      accessSync(candidate, constants.X_OK);
      if (statSync(candidate).isFile()) return candidate;
    } catch {
      // next
    }
  }
  return null;
}

export function launcherPath(): string | null {
  const p = join(PACKAGE_ROOT, 'build', 'cordon-launcher');
  try {
    accessSync(p, constants.X_OK);
    return p;
  } catch {
    return null;
  }
}

/**
 * Whether a process with this uid/gids and no capabilities (what the sandbox has, even as root)
 * could connect() to `path`: search permission on every ancestor, write permission on the socket.
 * Sockets it could not reach need no mask, and bubblewrap could not mount one there anyway.
 */
export function reachableWithoutCapabilities(path: string, uid: number, gids: number[], dirCache = new Map<string, boolean>()): boolean {
  const allows = (st: { uid: number; gid: number; mode: number }, bit: number) =>
    st.uid === uid ? (st.mode >> 6) & bit : gids.includes(st.gid) ? (st.mode >> 3) & bit : st.mode & bit;
  const parts = path.split('/').filter(Boolean);
  let dir = '';
  for (let i = 0; i < parts.length - 1; i++) {
    dir += '/' + parts[i];
    let ok = dirCache.get(dir);
    if (ok === undefined) {
      try {
        ok = !!allows(statSync(dir), 1);
      } catch {
        ok = false;
      }
      dirCache.set(dir, ok);
    }
    if (!ok) return false;
  }
  try {
    return !!allows(statSync(path), 2);
  } catch {
    return false;
  }
}

/**
 * Pathname sockets that processes of this network namespace listen on. A socket file is
 * reachable from any network namespace that can see its path, and a read-only bind does not stop
 * connect(), so every one the sandbox could reach is masked in it unless the policy exposes it.
 */
export function listeningHostSockets(procNetUnix = '/proc/net/unix'): string[] {
  let text: string;
  try {
    text = readFileSync(procNetUnix, 'utf8');
  } catch {
    return [];
  }
  const out = new Set<string>();
  const uid = process.getuid?.() ?? 0;
  const gids = process.getgroups?.() ?? [];
  const dirCache = new Map<string, boolean>();
  for (const line of text.split('\n').slice(1)) {
    // Num RefCount Protocol Flags Type St Inode Path — Flags 00010000 = __SO_ACCEPTCON (listening).
    const cols = line.trim().split(/\s+/);
    const path = cols.slice(7).join(' ');
    if (!path || path.startsWith('@') || !path.startsWith('/')) continue;
    const listening = (parseInt(cols[3] ?? '0', 16) & 0x10000) !== 0;
    const datagram = cols[4] === '0002';
    if (!listening && !datagram) continue;
    try {
      if (!lstatSync(path).isSocket()) continue;
      const real = realpathSync.native(path);
      if (reachableWithoutCapabilities(real, uid, gids, dirCache)) out.add(real);
    } catch {
      // gone, or in a directory we cannot see: then the sandbox cannot see it either
    }
  }
  return [...out].sort();
}

export function hostFacts(): LinuxHostFacts {
  const a = arch();
  let resolvConf: string | null = null;
  try {
    resolvConf = realpathSync.native('/etc/resolv.conf');
  } catch {
    resolvConf = null;
  }
  return {
    uid: process.getuid?.() ?? 0,
    gid: process.getgid?.() ?? 0,
    arch: a === 'x64' ? 'x86_64' : a === 'arm64' ? 'aarch64' : 'other',
    bwrap: findExecutable('bwrap'),
    launcher: launcherPath(),
    installDir: PACKAGE_ROOT,
    hostSockets: listeningHostSockets(),
    resolvConf,
  };
}

function readTrim(path: string): string | null {
  try {
    return readFileSync(path, 'utf8').trim();
  } catch {
    return null;
  }
}

/**
 * Whether unprivileged user namespaces can be created, from the kernel's switches (no process is
 * started). CORDON_FORCE_REDUCED=1 pretends they cannot, to exercise the reduced tier; it can only
 * weaken the sandbox when the policy also allows the reduced tier.
 */
export function userNamespaces(env: Record<string, string | undefined> = process.env, bwrap: string | null = null): { available: boolean; reason: string } {
  if (env.CORDON_FORCE_REDUCED === '1') return { available: false, reason: 'CORDON_FORCE_REDUCED=1 simulates a machine without user namespaces' };
  if (process.getuid?.() !== 0 && readTrim('/proc/sys/kernel/apparmor_restrict_unprivileged_userns') === '1' && bwrap) {
    // Allowed only for programs with an AppArmor profile that grants userns: ask bwrap (bounded).
    const r = spawnSync(bwrap, ['--unshare-user', '--ro-bind', '/', '/', '--', '/bin/true'], { timeout: 5000, env: {} });
    if (r.status !== 0) return { available: false, reason: 'AppArmor restricts unprivileged user namespaces and bwrap has no profile allowing them' };
  }
  if (process.getuid?.() !== 0 && readTrim('/proc/sys/kernel/unprivileged_userns_clone') === '0')
    return { available: false, reason: 'unprivileged user namespaces are disabled (kernel.unprivileged_userns_clone=0)' };
  if (readTrim('/proc/sys/user/max_user_namespaces') === '0') return { available: false, reason: 'user namespaces are disabled (user.max_user_namespaces=0)' };
  return { available: true, reason: '' };
}

/**
 * Kills sandboxes bubblewrap left behind: when bwrap is killed between creating its child and
 * signalling it, the child (already PID 1 of its namespaces) waits for ever for that signal. Such a
 * child is a `bwrap` process of ours, adopted by init, that was starting cordon's launcher. Returns
 * how many it killed. Cheap enough to run once per cordon process.
 */
export function sweepOrphanedSandboxes(launcher: string | null, uid = process.getuid?.() ?? 0): number {
  if (!launcher) return 0;
  let killed = 0;
  let pids: string[];
  try {
    pids = readdirSync('/proc').filter((d) => /^\d+$/.test(d));
  } catch {
    return 0;
  }
  for (const pid of pids) {
    try {
      const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
      if (!stat.startsWith(`${pid} (bwrap) `)) continue;
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 4).split(' ')[0]);
      if (ppid !== 1 || statSync(`/proc/${pid}`).uid !== uid) continue;
      const argv = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
      // Any cordon's launcher (another install or version may have left it).
      const target = argv[argv.indexOf('--') + 1] ?? '';
      if (target !== launcher && !target.endsWith('/cordon-launcher')) continue;
      process.kill(Number(pid), 'SIGKILL');
      killed++;
    } catch {
      // gone meanwhile, or not ours
    }
  }
  return killed;
}
