// What cgroup setup this host offers to the current user: where the cgroup hierarchies are mounted,
// where this process sits in them, and where it may create cgroups. The parsers are pure (tested
// on sample text); detectCgroupFacts() is the thin part that reads /proc and probes access.
import { accessSync, constants, readFileSync } from 'node:fs';

/** The controllers cordon uses. */
export type Controller = 'memory' | 'pids' | 'cpu' | 'cpuacct';
const CONTROLLERS: readonly Controller[] = ['memory', 'pids', 'cpu', 'cpuacct'];

export interface CgroupMount {
  version: 1 | 2;
  /** Where it is mounted. */
  mountPoint: string;
  /** Which cgroup of the hierarchy the mount shows at its mount point (`/` unless bind-mounted or namespaced). */
  root: string;
  /** v1: the controllers bound to the hierarchy (and `name=…`); v2: empty (see cgroup.controllers). */
  options: string[];
}

export interface CgroupV1Hierarchy {
  /** The controllers of this hierarchy that cordon uses (`cpu` and `cpuacct` are often mounted together). */
  controllers: Controller[];
  mountPoint: string;
  /** This process's cgroup directory in the hierarchy: sandbox cgroups are created beneath it. */
  own: string;
  /** The current user may create cgroups beneath `own` and move processes into them. */
  writable: boolean;
}

export interface CgroupV2Facts {
  mountPoint: string;
  /** This process's cgroup directory. */
  own: string;
  /**
   * Where sandbox cgroups can be created: the topmost ancestor of `own` (inclusive) that the
   * current user may create cgroups in and move processes through (the delegation root: the
   * mount root for root, `user@UID.service` under systemd user delegation). null: none is writable.
   */
  base: string | null;
  /** Controllers the base offers (its cgroup.controllers), limited to the ones cordon uses. */
  available: Controller[];
  /** Controllers already enabled for the base's children (its cgroup.subtree_control). */
  enabled: Controller[];
  /**
   * Missing controllers can be enabled at the base: it is the real root cgroup, or holds no
   * processes of its own (cgroup v2 refuses controllers in a cgroup that has member processes).
   */
  canEnable: boolean;
}

export interface CgroupFacts {
  uid: number;
  /** The cgroup2 hierarchy, also when it is the empty "unified" one of a hybrid setup. */
  v2: CgroupV2Facts | null;
  /** cgroup v1 hierarchies that carry a controller cordon uses. */
  v1: CgroupV1Hierarchy[];
}

/** Splits /proc/self/mountinfo into the cgroup mounts. Mount points are unescaped (`\040` → space). */
export function parseCgroupMounts(mountinfo: string): CgroupMount[] {
  const out: CgroupMount[] = [];
  for (const line of mountinfo.split('\n')) {
    const sep = line.indexOf(' - ');
    if (sep < 0) continue;
    const pre = line.slice(0, sep).split(' ');
    const post = line.slice(sep + 3).split(' ');
    const fsType = post[0];
    if (fsType !== 'cgroup' && fsType !== 'cgroup2') continue;
    const root = unescapeMountField(pre[3] ?? '/');
    const mountPoint = unescapeMountField(pre[4] ?? '');
    const options = (post[2] ?? '').split(',').filter((o) => o !== 'rw' && o !== 'ro');
    out.push({ version: fsType === 'cgroup2' ? 2 : 1, mountPoint, root, options: fsType === 'cgroup2' ? [] : options });
  }
  return out;
}

function unescapeMountField(s: string): string {
  return s.replace(/\\([0-7]{3})/g, (_, oct: string) => String.fromCharCode(parseInt(oct, 8)));
}

export interface ProcCgroupLine {
  /** 0 for the v2 hierarchy. */
  id: number;
  /** v1 controllers (and `name=…`); empty for v2. */
  controllers: string[];
  path: string;
}

/** Parses /proc/<pid>/cgroup (`id:controllers:path`; paths may contain colons). */
export function parseProcCgroup(text: string): ProcCgroupLine[] {
  const out: ProcCgroupLine[] = [];
  for (const line of text.split('\n')) {
    const a = line.indexOf(':');
    const b = a < 0 ? -1 : line.indexOf(':', a + 1);
    if (b < 0) continue;
    const controllers = line.slice(a + 1, b);
    out.push({ id: Number(line.slice(0, a)), controllers: controllers ? controllers.split(',') : [], path: line.slice(b + 1) });
  }
  return out;
}

/**
 * The directory of cgroup `path` in a mount that shows cgroup `root` at `mountPoint`, or null when
 * the mount does not show it (a bind-mounted subtree elsewhere).
 */
export function cgroupDir(mount: Pick<CgroupMount, 'mountPoint' | 'root'>, path: string): string | null {
  const root = mount.root === '/' ? '' : mount.root.replace(/\/+$/, '');
  if (root && path !== root && !path.startsWith(`${root}/`)) return null;
  const rel = path.slice(root.length).replace(/^\/+/, '');
  return rel ? `${mount.mountPoint.replace(/\/+$/, '')}/${rel}` : mount.mountPoint;
}

function parentDir(dir: string): string {
  return dir.slice(0, dir.lastIndexOf('/')) || '/';
}

/** The host access checks detection needs; injectable so the walk can be tested on sample data. */
export interface CgroupProbe {
  /** The current user may create entries in `dir` and write its cgroup.procs. */
  canDelegate(dir: string): boolean;
  read(file: string): string | null;
}

const hostProbe: CgroupProbe = {
  canDelegate(dir) {
    try {
      accessSync(dir, constants.W_OK | constants.X_OK);
      accessSync(`${dir}/cgroup.procs`, constants.W_OK);
      return true;
    } catch {
      return false;
    }
  },
  read(file) {
    try {
      return readFileSync(file, 'utf8');
    } catch {
      return null;
    }
  },
};

function controllerList(text: string | null): Controller[] {
  const words = (text ?? '').trim().split(/\s+/);
  return CONTROLLERS.filter((c) => words.includes(c));
}

/** Works out the facts from mountinfo, /proc/self/cgroup and access probes. */
export function cgroupFactsFrom(mountinfo: string, procCgroup: string, uid: number, probe: CgroupProbe): CgroupFacts {
  const mounts = parseCgroupMounts(mountinfo);
  const lines = parseProcCgroup(procCgroup);
  let v2: CgroupV2Facts | null = null;
  const v2Line = lines.find((l) => l.id === 0 && l.controllers.length === 0);
  const v2Mount = mounts.find((m) => m.version === 2);
  const v2Own = v2Mount && v2Line ? cgroupDir(v2Mount, v2Line.path) : null;
  if (v2Mount && v2Own) {
    // Delegation: moving a process needs write access to cgroup.procs of the common ancestor of
    // its old and new cgroup, so the base is the topmost writable ancestor of our own cgroup.
    let base: string | null = null;
    for (let dir = v2Own; ; dir = parentDir(dir)) {
      if (probe.canDelegate(dir)) base = dir;
      else if (base) break;
      if (dir === v2Mount.mountPoint || dir === '/') break;
    }
    // The real root cgroup has no cgroup.type; a cgroup namespace's root (a container) has one
    // and obeys the no-internal-processes rule like any other cgroup.
    const isRealRoot = !!base && probe.read(`${base}/cgroup.type`) === null;
    const members = base ? (probe.read(`${base}/cgroup.procs`) ?? '').trim() : '';
    v2 = {
      mountPoint: v2Mount.mountPoint,
      own: v2Own,
      base,
      available: base ? controllerList(probe.read(`${base}/cgroup.controllers`)) : [],
      enabled: base ? controllerList(probe.read(`${base}/cgroup.subtree_control`)) : [],
      canEnable: !!base && (isRealRoot || members === ''),
    };
  }
  const v1: CgroupV1Hierarchy[] = [];
  for (const m of mounts) {
    if (m.version !== 1) continue;
    const controllers = CONTROLLERS.filter((c) => m.options.includes(c));
    if (controllers.length === 0) continue;
    const line = lines.find((l) => l.id !== 0 && controllers.some((c) => l.controllers.includes(c)));
    const own = line ? cgroupDir(m, line.path) : null;
    if (!own || v1.some((h) => h.mountPoint === m.mountPoint)) continue;
    v1.push({ controllers, mountPoint: m.mountPoint, own, writable: probe.canDelegate(own) });
  }
  return { uid, v2, v1 };
}

let cached: CgroupFacts | null = null;

/** This host's cgroup facts for the current user (read once per process: a process rarely changes cgroup). */
export function detectCgroupFacts(opts: { fresh?: boolean } = {}): CgroupFacts {
  if (cached && !opts.fresh) return cached;
  const uid = process.getuid?.() ?? 0;
  const facts = cgroupFactsFrom(hostProbe.read('/proc/self/mountinfo') ?? '', hostProbe.read('/proc/self/cgroup') ?? '', uid, hostProbe);
  cached = facts;
  return facts;
}
