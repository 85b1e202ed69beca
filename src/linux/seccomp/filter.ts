// Compiles cordon's seccomp policy into a classic BPF program (pure: no OS access).
//
// Shape of the program:
//   1. wrong architecture, or an x32 call on x86_64           -> kill the process
//   2. binary search on the syscall number over the listed calls (unlisted calls cost ~log2(n)
//      comparisons and are allowed: this layer removes kernel attack surface, it is not the
//      filesystem or network lock)
//   3. per-call argument tests, then a shared return (allow, EPERM/notify, ENOSYS)
//
// Arguments are 64-bit in seccomp_data; BPF reads 32-bit words. Every argument test below says
// which words it reads and why that is exact for the kernel's own interpretation of the argument.

import { BpfProgram, encodeProgram } from './bpf.js';
import { ARCHES, AUDIT_ARCH, SYSCALLS, X32_SYSCALL_BIT, type Arch } from './syscalls.js';

export type { Arch } from './syscalls.js';

export interface SeccompSpec {
  arch: Arch;
  /** 'off': no IP sockets needed; 'proxy': AF_INET/AF_INET6 needed to reach the in-namespace proxy; 'full'. */
  network: 'off' | 'proxy' | 'full';
  /** 'errno': denied calls fail in the kernel; 'notify': they go to the supervisor (SECCOMP_RET_USER_NOTIF), which answers with the errno from `denied` and records the violation. */
  denyAction: 'errno' | 'notify';
  /** Send write-intent file syscalls to the supervisor (it always lets them continue); used to report denied writes. */
  observeWrites: boolean;
  /**
   * Also refuse AF_INET/AF_INET6 sockets (only with network 'off'). Off by default: with a network
   * namespace, loopback is private and test suites need it (local HTTP servers, database fixtures).
   * Set it when no network namespace isolates the command (the reduced tier), where an IP socket
   * would reach the host's network.
   */
  denyIpSockets?: boolean;
  /**
   * Refuse socket(AF_UNIX) (socketpair stays allowed). For the reduced tier, where no mount view
   * hides host services' sockets: without socket() nothing can connect() to them.
   */
  denyUnixSocketCreation?: boolean;
}

export interface CompiledSeccomp {
  /** `struct sock_filter[]`, ready for seccomp(SECCOMP_SET_MODE_FILTER) or bwrap --seccomp. */
  program: Buffer;
  instructions: number;
  /**
   * nr -> name and errno the supervisor must answer with (denyAction 'notify'). With 'errno' the
   * kernel returns the same errno itself and the map is informational. A notification for a call
   * whose denial depends on its arguments is only sent when the arguments matched, so the
   * supervisor never re-checks them. `clone3` is absent: the kernel always answers it with ENOSYS.
   */
  denied: Map<number, { name: string; errno: number }>;
  /**
   * nr -> how to read the paths of an observed write-intent call (observeWrites), which the
   * supervisor must always let continue. `paths` lists [dirfdArgIndex | null, pathArgIndex]
   * pairs: a null dirfd means the path is relative to the working directory; a dirfd argument
   * (AT_FDCWD = -100 as a 32-bit int) applies otherwise. A null path pointer (utimensat on an fd)
   * names the dirfd itself. `flagsArg` is set when only some flag values are writes: the filter
   * already checked them, so every notification is a write intent.
   */
  observed: Map<number, { name: string; paths: [number | null, number][]; flagsArg?: number }>;
  /** True when the program returns SECCOMP_RET_USER_NOTIF: install it with SECCOMP_FILTER_FLAG_NEW_LISTENER. */
  usesNotify: boolean;
}

// seccomp return values (linux/seccomp.h).
export const SECCOMP_RET = {
  killProcess: 0x80000000,
  errno: 0x00050000,
  userNotif: 0x7fc00000,
  allow: 0x7fff0000,
} as const;

export const EPERM = 1;
export const ENOSYS = 38;

// struct seccomp_data { int nr; __u32 arch; __u64 instruction_pointer; __u64 args[6]; }, little-endian.
const OFFSET_NR = 0;
const OFFSET_ARCH = 4;
const argLowWord = (i: number): number => 16 + 8 * i;
const argHighWord = (i: number): number => 20 + 8 * i;

const CLONE_NEWTIME = 0x00000080;
const CLONE_NEWNS = 0x00020000;
const CLONE_NEWCGROUP = 0x02000000;
const CLONE_NEWUTS = 0x04000000;
const CLONE_NEWIPC = 0x08000000;
const CLONE_NEWUSER = 0x10000000;
const CLONE_NEWPID = 0x20000000;
const CLONE_NEWNET = 0x40000000;
/** clone() reads its low byte as the exit signal, so CLONE_NEWTIME (0x80) only means a namespace to unshare(). */
const CLONE_NEW_FOR_CLONE = CLONE_NEWNS | CLONE_NEWCGROUP | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWUSER | CLONE_NEWPID | CLONE_NEWNET;
const CLONE_NEW_FOR_UNSHARE = CLONE_NEW_FOR_CLONE | CLONE_NEWTIME;

const PER_LINUX = 0;
const PERSONALITY_QUERY = 0xffffffff;
const TIOCSTI = 0x5412;
const TIOCLINUX = 0x541c;

const AF_UNIX = 1;
const AF_INET = 2;
const AF_INET6 = 10;
const AF_NETLINK = 16;
const NETLINK_ROUTE = 0;

/** open/openat flags that make the call a write: O_WRONLY | O_RDWR | O_CREAT | O_TRUNC (O_TMPFILE needs one of the first two). */
const WRITE_INTENT_FLAGS = 0x1 | 0x2 | 0x40 | 0x200;

/**
 * A test on one argument. The low 32 bits are compared; `highNonZero` also matches when the high
 * 32 bits are not zero. Exactly one of lowAnyBit / lowIn / lowNotIn is set.
 */
interface ArgTest {
  arg: number;
  lowAnyBit?: number;
  lowIn?: readonly number[];
  lowNotIn?: readonly number[];
  highNonZero?: boolean;
}

type Condition = ArgTest | { anyOf: readonly Condition[] } | { allOf: readonly Condition[] };

interface DenyRule {
  names: readonly string[];
  /** Deny only when this matches; without it the call is always denied. */
  when?: Condition;
}

/** The calls refused with EPERM. Names an architecture lacks are skipped for it. */
function denyRules(spec: SeccompSpec): DenyRule[] {
  return [
    // Namespaces: a new user namespace would hand the command a full capability set over a private
    // copy of the mount tree, from which the sandbox's binds can be undone.
    // unshare(unsigned long): the kernel rejects unknown flags with EINVAL, so high bits cannot
    // hide a CLONE_NEW* bit today; a non-zero high word is denied anyway so that a flag added
    // there later does not slip through.
    { names: ['unshare'], when: { arg: 0, lowAnyBit: CLONE_NEW_FOR_UNSHARE, highNonZero: true } },
    // clone(unsigned long): the kernel itself uses only the low 32 bits (lower_32_bits(flags)),
    // so bits above 32 are ignored by both sides and the low word is exact.
    { names: ['clone'], when: { arg: 0, lowAnyBit: CLONE_NEW_FOR_CLONE } },
    { names: ['setns'] },
    // The mount family: detaching or covering the sandbox's mounts.
    {
      names: ['mount', 'umount2', 'pivot_root', 'move_mount', 'open_tree', 'open_tree_attr', 'fsopen', 'fsmount', 'fsconfig', 'fspick', 'mount_setattr'],
    },
    // Reading or writing other processes (the supervisor, other sandboxed commands). pidfd_getfd
    // steals another process's file descriptors under the same ptrace access check.
    { names: ['ptrace', 'process_vm_readv', 'process_vm_writev', 'pidfd_getfd'] },
    // Kernel attack surface no build needs. io_uring would also bypass this filter: its
    // IORING_OP_SOCKET, _OPENAT, ... operations never pass through the syscall entry.
    {
      names: [
        'kexec_load', 'kexec_file_load', 'init_module', 'finit_module', 'delete_module',
        'bpf', 'perf_event_open', 'userfaultfd', 'keyctl', 'add_key', 'request_key',
        'io_uring_setup', 'io_uring_enter', 'io_uring_register',
        'open_by_handle_at', 'name_to_handle_at',
        'acct', 'swapon', 'swapoff', 'reboot', 'quotactl', 'quotactl_fd',
        // Setting (and, for the adjtimex pair, reading) the clocks. stime exists only on 32-bit
        // ABIs, which the architecture check already refuses.
        'settimeofday', 'clock_settime', 'clock_adjtime', 'adjtimex',
      ],
    },
    // personality(unsigned int): the kernel truncates to 32 bits, so the low word is exact. Only
    // the default and the query survive (no ADDR_NO_RANDOMIZE, READ_IMPLIES_EXEC, ...).
    { names: ['personality'], when: { arg: 0, lowNotIn: [PER_LINUX, PERSONALITY_QUERY] } },
    // ioctl(fd, unsigned int cmd, ...): the kernel truncates cmd to 32 bits, so comparing all 64
    // would let TIOCSTI | 1 << 32 through (the flatpak CVE-2019-10063 pattern); compare the low word.
    // TIOCSTI pushes input into the terminal the agent's user will read; TIOCLINUX can do the same
    // on a virtual console.
    { names: ['ioctl'], when: { arg: 1, lowIn: [TIOCSTI, TIOCLINUX] } },
    // socket(int family, int type, int protocol): ints, truncated by the kernel, so the low words
    // are exact. An allow-list rather than a deny-list: every other family (packet, vsock,
    // bluetooth, key, alg, xdp, can, tipc, rds, ...) is kernel attack surface or a path out of the
    // network namespace (vsock reaches the hypervisor or, under WSL2, Windows); no build needs one.
    ...(spec.denyUnixSocketCreation
      ? [{ names: ['socket'], when: socketDenial(spec, false) }, { names: ['socketpair'], when: socketDenial(spec, true) }]
      : [{ names: ['socket', 'socketpair'], when: socketDenial(spec, true) }]),
  ];
}

function socketDenial(spec: SeccompSpec, unix: boolean): Condition {
  // AF_UNIX: builds, test runners and Node's execSync need it; the mount view decides which host
  // sockets are reachable. Without a mount view (denyUnixSocketCreation) only socketpair keeps it:
  // a socket() is the first step of connect() to a host service's socket. IP: see denyIpSockets.
  const families = unix ? [AF_UNIX, AF_NETLINK] : [AF_NETLINK];
  if (!spec.denyIpSockets) families.push(AF_INET, AF_INET6);
  const familyNotAllowed: ArgTest = { arg: 0, lowNotIn: families };
  if (spec.network !== 'off') return familyNotAllowed;
  // Without a network, netlink keeps only NETLINK_ROUTE: getifaddrs() needs it (Node's
  // os.networkInterfaces() throws without it, and dev servers call that), and unprivileged it only
  // reads the namespace's own links and addresses. Audit, netfilter, xfrm, uevent, sock_diag and
  // generic netlink stay out.
  return { anyOf: [familyNotAllowed, { allOf: [{ arg: 0, lowIn: [AF_NETLINK] }, { arg: 2, lowNotIn: [NETLINK_ROUTE] }] }] };
}

type PathArgs = [number | null, number][];

/** Write-intent calls that take a path (fd-only forms such as fchmod or ftruncate are not observed). */
const OBSERVED_WRITES: Readonly<Record<string, { paths: PathArgs; flagsArg?: number }>> = {
  open: { paths: [[null, 0]], flagsArg: 1 },
  openat: { paths: [[0, 1]], flagsArg: 2 },
  creat: { paths: [[null, 0]] },
  // openat2 keeps its flags in a struct that BPF cannot read: observe every call.
  openat2: { paths: [[0, 1]] },
  mkdir: { paths: [[null, 0]] },
  mkdirat: { paths: [[0, 1]] },
  mknod: { paths: [[null, 0]] },
  mknodat: { paths: [[0, 1]] },
  unlink: { paths: [[null, 0]] },
  unlinkat: { paths: [[0, 1]] },
  rmdir: { paths: [[null, 0]] },
  rename: { paths: [[null, 0], [null, 1]] },
  renameat: { paths: [[0, 1], [2, 3]] },
  renameat2: { paths: [[0, 1], [2, 3]] },
  link: { paths: [[null, 0], [null, 1]] },
  linkat: { paths: [[0, 1], [2, 3]] },
  // symlink's first argument is the link's content, not a path that is written.
  symlink: { paths: [[null, 1]] },
  symlinkat: { paths: [[1, 2]] },
  truncate: { paths: [[null, 0]] },
  chmod: { paths: [[null, 0]] },
  fchmodat: { paths: [[0, 1]] },
  fchmodat2: { paths: [[0, 1]] },
  chown: { paths: [[null, 0]] },
  lchown: { paths: [[null, 0]] },
  fchownat: { paths: [[0, 1]] },
  utime: { paths: [[null, 0]] },
  utimes: { paths: [[null, 0]] },
  futimesat: { paths: [[0, 1]] },
  utimensat: { paths: [[0, 1]] },
  setxattr: { paths: [[null, 0]] },
  lsetxattr: { paths: [[null, 0]] },
  removexattr: { paths: [[null, 0]] },
  lremovexattr: { paths: [[null, 0]] },
  setxattrat: { paths: [[0, 1]] },
  removexattrat: { paths: [[0, 1]] },
  file_setattr: { paths: [[0, 1]] },
};

/** Every syscall name the filter may mention (for tests and table checks). */
export function filterSyscallNames(): string[] {
  const all = { arch: 'x86_64', network: 'off', denyAction: 'errno', observeWrites: true } as const;
  return [...new Set([...denyRules(all).flatMap((r) => r.names), 'clone3', ...Object.keys(OBSERVED_WRITES)])];
}

type Target = 'allow' | 'deny' | 'enosys' | 'notify';

interface Handler {
  name: string;
  target: Target;
  when?: Condition;
}

export function compileSeccomp(spec: SeccompSpec): CompiledSeccomp {
  checkSpec(spec);
  const table = SYSCALLS[spec.arch];
  const handlers = new Map<number, Handler>();
  const denied = new Map<number, { name: string; errno: number }>();
  const observed = new Map<number, { name: string; paths: PathArgs; flagsArg?: number }>();
  const add = (name: string, handler: Omit<Handler, 'name'>): number | undefined => {
    const nr = table[name];
    if (nr === undefined) return undefined;
    if (handlers.has(nr)) throw new Error(`seccomp: ${name} (${nr}) has two rules`);
    handlers.set(nr, { name, ...handler });
    return nr;
  };

  for (const rule of denyRules(spec)) {
    for (const name of rule.names) {
      const nr = add(name, rule.when ? { target: 'deny', when: rule.when } : { target: 'deny' });
      if (nr !== undefined) denied.set(nr, { name, errno: EPERM });
    }
  }
  // clone3 keeps its flags in a struct BPF cannot read; ENOSYS makes libc fall back to clone,
  // whose flags the rule above checks. Always answered by the kernel: it is not a violation.
  add('clone3', { target: 'enosys' });
  if (spec.observeWrites) {
    for (const [name, how] of Object.entries(OBSERVED_WRITES)) {
      // open/openat flags are int: the kernel ignores the high word, so the low word is exact.
      const when = how.flagsArg === undefined ? undefined : { arg: how.flagsArg, lowAnyBit: WRITE_INTENT_FLAGS };
      const nr = add(name, when ? { target: 'notify', when } : { target: 'notify' });
      if (nr !== undefined) observed.set(nr, { name, paths: how.paths.map(([d, p]) => [d, p]), ...(how.flagsArg === undefined ? {} : { flagsArg: how.flagsArg }) });
    }
  }

  const p = new BpfProgram();
  const used = new Set<Target | 'kill'>();
  const to = (target: Target | 'kill'): string => {
    used.add(target);
    return target;
  };

  // Foreign-architecture calls (i386 via int 0x80, arm32 compat) use other numbers, so none of the
  // rules below would mean anything for them. Kill rather than fail them: no build tool issues
  // them, every one of them would otherwise be unfiltered, and SIGSYS names the cause where an
  // errno would leave a 32-bit program half-working.
  p.loadWord(OFFSET_ARCH).jeq(AUDIT_ARCH[spec.arch], undefined, to('kill'));
  p.loadWord(OFFSET_NR);
  // x32 calls carry the x86_64 audit arch with bit 30 set in the number, so they miss every rule
  // below: kill them too. nr -1 is exempt: it is what a tracer sets to skip a call, and the
  // kernel answers it with ENOSYS.
  const x32 = p.freshLabel('x32');
  if (spec.arch === 'x86_64') p.jge(X32_SYSCALL_BIT, x32);

  const handlerLabel = new Map<number, string>();
  for (const [nr, h] of handlers) handlerLabel.set(nr, h.when ? p.freshLabel(h.name) : to(h.target));
  emitDispatch(p, [...handlers.keys()].sort((a, b) => a - b), handlerLabel, to('allow'));

  for (const [nr, h] of handlers) {
    if (!h.when) continue;
    p.label(handlerLabel.get(nr)!);
    emitCondition(p, h.when, to(h.target), to('allow'));
  }

  if (spec.arch === 'x86_64') p.label(x32).jeq(0xffffffff, to('allow'), to('kill'));
  const returns: Record<Target | 'kill', number> = {
    allow: SECCOMP_RET.allow,
    kill: SECCOMP_RET.killProcess,
    deny: spec.denyAction === 'notify' ? SECCOMP_RET.userNotif : SECCOMP_RET.errno | EPERM,
    enosys: SECCOMP_RET.errno | ENOSYS,
    notify: SECCOMP_RET.userNotif,
  };
  for (const target of ['allow', 'deny', 'enosys', 'notify', 'kill'] as const) {
    if (used.has(target)) p.label(target).ret(returns[target]);
  }

  const instructions = p.assemble();
  return {
    program: encodeProgram(instructions),
    instructions: instructions.length,
    denied,
    observed,
    usesNotify: spec.denyAction === 'notify' || observed.size > 0,
  };
}

/** Binary search on the syscall number (in A): jump to its handler, or to `otherwise`. */
function emitDispatch(p: BpfProgram, nrs: readonly number[], handlerLabel: Map<number, string>, otherwise: string): void {
  if (nrs.length <= 4) {
    nrs.forEach((nr, i) => p.jeq(nr, handlerLabel.get(nr), i === nrs.length - 1 ? otherwise : undefined));
    if (nrs.length === 0) p.jump(otherwise);
    return;
  }
  const mid = Math.floor(nrs.length / 2);
  const upper = p.freshLabel('nr_ge');
  p.jge(nrs[mid]!, upper);
  emitDispatch(p, nrs.slice(0, mid), handlerLabel, otherwise);
  p.label(upper);
  emitDispatch(p, nrs.slice(mid), handlerLabel, otherwise);
}

function emitCondition(p: BpfProgram, condition: Condition, match: string, noMatch: string): void {
  if ('anyOf' in condition || 'allOf' in condition) {
    const any = 'anyOf' in condition;
    const parts = any ? condition.anyOf : condition.allOf;
    parts.forEach((part, i) => {
      if (i === parts.length - 1) return emitCondition(p, part, match, noMatch);
      const next = p.freshLabel('cond');
      emitCondition(p, part, any ? match : next, any ? next : noMatch);
      p.label(next);
    });
    return;
  }
  emitArgTest(p, condition, match, noMatch);
}

function emitArgTest(p: BpfProgram, test: ArgTest, match: string, noMatch: string): void {
  if (test.highNonZero) p.loadWord(argHighWord(test.arg)).jeq(0, undefined, match);
  p.loadWord(argLowWord(test.arg));
  if (test.lowAnyBit !== undefined) {
    p.jset(test.lowAnyBit, match, noMatch);
  } else if (test.lowIn !== undefined) {
    test.lowIn.forEach((v, i, all) => p.jeq(v, match, i === all.length - 1 ? noMatch : undefined));
  } else if (test.lowNotIn !== undefined) {
    test.lowNotIn.forEach((v, i, all) => p.jeq(v, noMatch, i === all.length - 1 ? match : undefined));
  } else {
    throw new Error('seccomp: argument test without a comparison');
  }
}

function checkSpec(spec: SeccompSpec): void {
  if (!ARCHES.includes(spec.arch)) throw new Error(`seccomp: arch must be 'x86_64' or 'aarch64' (got '${String(spec.arch)}')`);
  if (!['off', 'proxy', 'full'].includes(spec.network)) throw new Error(`seccomp: network must be 'off', 'proxy' or 'full' (got '${String(spec.network)}')`);
  if (!['errno', 'notify'].includes(spec.denyAction)) throw new Error(`seccomp: denyAction must be 'errno' or 'notify' (got '${String(spec.denyAction)}')`);
  if (typeof spec.observeWrites !== 'boolean') throw new Error('seccomp: observeWrites must be true or false');
  if (spec.denyIpSockets && spec.network !== 'off') throw new Error(`seccomp: denyIpSockets needs network 'off' (got '${spec.network}'); drop denyIpSockets or turn the network off`);
}
