// System call numbers for the calls cordon's seccomp filter names, per architecture.
//
// Source: the kernel UAPI headers (x86_64: asm/unistd_64.h; aarch64: asm-generic/unistd.h, which
// arm64 uses with __ARCH_WANT_RENAMEAT, NEW_STAT, SET_GET_RLIMIT, SYS_CLONE3). Numbers from 424 on
// are shared by every architecture; those above 450 are newer than Debian 12's headers and were
// taken from the kernel's syscall tables (test/linux/seccomp/syscalls.test.ts compares the rest
// with the headers when they are installed, and checks the newer ones on the running kernel).

export type Arch = 'x86_64' | 'aarch64';
export const ARCHES: readonly Arch[] = ['x86_64', 'aarch64'];

/** `seccomp_data.arch` values (linux/audit.h): EM_* | __AUDIT_ARCH_64BIT | __AUDIT_ARCH_LE. */
export const AUDIT_ARCH: Readonly<Record<Arch, number>> = {
  x86_64: 0xc000003e,
  aarch64: 0xc00000b7,
};

/** x86_64 marks x32-ABI calls by setting this bit in the syscall number (same audit arch). */
export const X32_SYSCALL_BIT = 0x40000000;

/** Calls both tables share (numbers from 424 on are the same on every architecture). */
const COMMON_NEW = {
  open_tree: 428,
  move_mount: 429,
  fsopen: 430,
  fsconfig: 431,
  fsmount: 432,
  fspick: 433,
  clone3: 435,
  openat2: 437,
  pidfd_getfd: 438,
  mount_setattr: 442,
  quotactl_fd: 443,
  fchmodat2: 452, // Linux 6.6
  setxattrat: 463, // Linux 6.13
  removexattrat: 466, // Linux 6.13
  open_tree_attr: 467, // Linux 6.15
  file_setattr: 469, // Linux 6.17
  io_uring_setup: 425,
  io_uring_enter: 426,
  io_uring_register: 427,
} as const;

const X86_64: Readonly<Record<string, number>> = {
  ...COMMON_NEW,
  open: 2,
  ioctl: 16,
  socket: 41,
  socketpair: 53,
  clone: 56,
  truncate: 76,
  rename: 82,
  mkdir: 83,
  rmdir: 84,
  creat: 85,
  link: 86,
  unlink: 87,
  symlink: 88,
  chmod: 90,
  chown: 92,
  lchown: 94,
  ptrace: 101,
  utime: 132,
  mknod: 133,
  personality: 135,
  pivot_root: 155,
  adjtimex: 159,
  acct: 163,
  settimeofday: 164,
  mount: 165,
  umount2: 166,
  swapon: 167,
  swapoff: 168,
  reboot: 169,
  init_module: 175,
  delete_module: 176,
  quotactl: 179,
  setxattr: 188,
  lsetxattr: 189,
  removexattr: 197,
  lremovexattr: 198,
  clock_settime: 227,
  utimes: 235,
  kexec_load: 246,
  add_key: 248,
  request_key: 249,
  keyctl: 250,
  openat: 257,
  mkdirat: 258,
  mknodat: 259,
  fchownat: 260,
  futimesat: 261,
  unlinkat: 263,
  renameat: 264,
  linkat: 265,
  symlinkat: 266,
  fchmodat: 268,
  unshare: 272,
  utimensat: 280,
  perf_event_open: 298,
  name_to_handle_at: 303,
  open_by_handle_at: 304,
  clock_adjtime: 305,
  setns: 308,
  process_vm_readv: 310,
  process_vm_writev: 311,
  finit_module: 313,
  renameat2: 316,
  kexec_file_load: 320,
  bpf: 321,
  userfaultfd: 323,
};

// aarch64 never had the legacy path calls (open, creat, mkdir, mknod, unlink, rmdir, rename, link,
// symlink, chmod, chown, lchown, utime, utimes, futimesat): libc uses the *at forms there.
const AARCH64: Readonly<Record<string, number>> = {
  ...COMMON_NEW,
  setxattr: 5,
  lsetxattr: 6,
  removexattr: 14,
  lremovexattr: 15,
  ioctl: 29,
  mknodat: 33,
  mkdirat: 34,
  unlinkat: 35,
  symlinkat: 36,
  linkat: 37,
  renameat: 38,
  umount2: 39,
  mount: 40,
  pivot_root: 41,
  truncate: 45,
  fchmodat: 53,
  fchownat: 54,
  openat: 56,
  quotactl: 60,
  utimensat: 88,
  acct: 89,
  personality: 92,
  unshare: 97,
  kexec_load: 104,
  init_module: 105,
  delete_module: 106,
  clock_settime: 112,
  ptrace: 117,
  reboot: 142,
  settimeofday: 170,
  adjtimex: 171,
  socket: 198,
  socketpair: 199,
  add_key: 217,
  request_key: 218,
  keyctl: 219,
  clone: 220,
  swapon: 224,
  swapoff: 225,
  perf_event_open: 241,
  name_to_handle_at: 264,
  open_by_handle_at: 265,
  clock_adjtime: 266,
  setns: 268,
  process_vm_readv: 270,
  process_vm_writev: 271,
  finit_module: 273,
  renameat2: 276,
  bpf: 280,
  userfaultfd: 282,
  kexec_file_load: 294,
};

/** name -> number, per architecture. A name missing from a table does not exist on that architecture. */
export const SYSCALLS: Readonly<Record<Arch, Readonly<Record<string, number>>>> = {
  x86_64: X86_64,
  aarch64: AARCH64,
};

/** The number of `name` on `arch`, or undefined when the architecture has no such call. */
export function syscallNumber(arch: Arch, name: string): number | undefined {
  return Object.hasOwn(SYSCALLS[arch], name) ? SYSCALLS[arch][name] : undefined;
}

/** The architecture Node runs on, if the filter supports it. */
export function hostArch(): Arch | undefined {
  if (process.arch === 'x64') return 'x86_64';
  if (process.arch === 'arm64') return 'aarch64';
  return undefined;
}
