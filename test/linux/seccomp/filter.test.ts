// The compiled policy, run in the test interpreter on synthetic seccomp_data, on both architectures.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { compileSeccomp, ENOSYS, EPERM, filterSyscallNames, type SeccompSpec } from '../../../src/linux/seccomp/filter.js';
import { AUDIT_ARCH, SYSCALLS, X32_SYSCALL_BIT, syscallNumber, type Arch } from '../../../src/linux/seccomp/syscalls.js';
import { BPF_MAX_INSTRUCTIONS } from '../../../src/linux/seccomp/bpf.js';
import { decide, run, type Action } from './interpreter.js';

const ARCHES: Arch[] = ['x86_64', 'aarch64'];
const ALLOW: Action = { action: 'allow' };
const KILL: Action = { action: 'kill_process' };
const DENIED: Action = { action: 'errno', errno: EPERM };
const NOSYS: Action = { action: 'errno', errno: ENOSYS };
const NOTIFY: Action = { action: 'user_notif' };
const HIGH = 1n << 32n;

const ALWAYS_DENIED = [
  'setns', 'mount', 'umount2', 'pivot_root', 'move_mount', 'open_tree', 'open_tree_attr', 'fsopen', 'fsmount', 'fsconfig', 'fspick', 'mount_setattr',
  'ptrace', 'process_vm_readv', 'process_vm_writev', 'pidfd_getfd', 'kexec_load', 'kexec_file_load', 'init_module', 'finit_module', 'delete_module',
  'bpf', 'perf_event_open', 'userfaultfd', 'keyctl', 'add_key', 'request_key', 'io_uring_setup', 'io_uring_enter', 'io_uring_register',
  'open_by_handle_at', 'name_to_handle_at', 'acct', 'swapon', 'swapoff', 'reboot', 'quotactl', 'quotactl_fd',
  'settimeofday', 'clock_settime', 'clock_adjtime', 'adjtimex',
];
const CLONE_NEW: Record<string, bigint> = {
  NEWNS: 0x20000n, NEWCGROUP: 0x2000000n, NEWUTS: 0x4000000n, NEWIPC: 0x8000000n, NEWUSER: 0x10000000n, NEWPID: 0x20000000n, NEWNET: 0x40000000n,
};
const CLONE_NEWTIME = 0x80n;
const SIGCHLD = 17n;
const O_WRONLY = 1n, O_RDWR = 2n, O_CREAT = 0x40n, O_TRUNC = 0x200n, O_APPEND = 0x400n, O_CLOEXEC = 0x80000n, O_DIRECTORY = 0x10000n;
const O_TMPFILE = 0x400000n | O_DIRECTORY;

/** Deterministic pseudo-random 64-bit values (xorshift64), so failures reproduce. */
function* randomArgs(seed: bigint): Generator<bigint[]> {
  let x = seed;
  const next = (): bigint => {
    x ^= (x << 13n) & 0xffffffffffffffffn;
    x ^= x >> 7n;
    x ^= (x << 17n) & 0xffffffffffffffffn;
    return x;
  };
  for (;;) yield [next(), next(), next(), next(), next(), next()];
}

function spec(arch: Arch, overrides: Partial<SeccompSpec> = {}): SeccompSpec {
  return { arch, network: 'off', denyAction: 'errno', observeWrites: false, ...overrides };
}

function on(arch: Arch, overrides: Partial<SeccompSpec> = {}) {
  const compiled = compileSeccomp(spec(arch, overrides));
  const call = (name: string, args: bigint[] = []): Action => {
    const nr = syscallNumber(arch, name);
    assert.notEqual(nr, undefined, `${arch} has no ${name}`);
    return decide(compiled.program, { nr: nr!, arch: AUDIT_ARCH[arch], args });
  };
  return { compiled, call };
}

for (const arch of ARCHES) {
  const other: Arch = arch === 'x86_64' ? 'aarch64' : 'x86_64';

  test(`${arch}: calls from another architecture are killed, whatever their number`, () => {
    const { compiled } = on(arch);
    const foreign = [AUDIT_ARCH[other], 0x40000003 /* i386 */, 0x40000028 /* arm */, 0];
    for (const archValue of foreign) {
      for (const nr of [0, 1, 39, 56, 101, 165, 0xffffffff]) {
        assert.deepEqual(decide(compiled.program, { nr, arch: archValue }), KILL, `arch 0x${archValue.toString(16)} nr ${nr}`);
      }
    }
  });

  test(`${arch}: every always-denied call fails with EPERM, whatever its arguments`, () => {
    const { call } = on(arch);
    const args = randomArgs(0x9e3779b97f4a7c15n);
    for (const name of ALWAYS_DENIED) {
      assert.deepEqual(call(name), DENIED, name);
      for (let i = 0; i < 20; i++) assert.deepEqual(call(name, args.next().value as bigint[]), DENIED, name);
    }
  });

  test(`${arch}: with denyAction 'notify' the same calls go to the supervisor, listed in 'denied'`, () => {
    const { compiled, call } = on(arch, { denyAction: 'notify' });
    assert.equal(compiled.usesNotify, true);
    for (const name of ALWAYS_DENIED) {
      assert.deepEqual(call(name), NOTIFY, name);
      assert.deepEqual(compiled.denied.get(syscallNumber(arch, name)!), { name, errno: EPERM });
    }
    assert.deepEqual(call('unshare', [CLONE_NEW.NEWUSER!]), NOTIFY);
    assert.deepEqual(call('unshare', [0x200n /* CLONE_FS */]), ALLOW);
    assert.deepEqual(call('clone3'), NOSYS, 'clone3 stays a kernel ENOSYS');
    assert.equal(compiled.denied.has(syscallNumber(arch, 'clone3')!), false);
    assert.deepEqual(call('ioctl', [0n, 0x5401n /* TCGETS */]), ALLOW);
  });

  test(`${arch}: unshare is denied for every namespace flag, also with a non-zero high word`, () => {
    const { call } = on(arch);
    for (const [flag, bit] of Object.entries({ ...CLONE_NEW, NEWTIME: CLONE_NEWTIME })) {
      assert.deepEqual(call('unshare', [bit]), DENIED, flag);
      assert.deepEqual(call('unshare', [bit | 0x200n | 0x400n]), DENIED, `${flag} with CLONE_FS|CLONE_FILES`);
      assert.deepEqual(call('unshare', [bit | HIGH]), DENIED, `${flag} with a high bit`);
    }
    assert.deepEqual(call('unshare', [0x200n | 0x400n | 0x40000n /* FS|FILES|SYSVSEM */]), ALLOW);
    assert.deepEqual(call('unshare', [0n]), ALLOW);
    // The kernel rejects high flag bits with EINVAL today; denying them keeps the rule exact if that changes.
    assert.deepEqual(call('unshare', [HIGH]), DENIED);
    assert.deepEqual(call('unshare', [CLONE_NEW.NEWUSER! << 32n]), DENIED);
  });

  test(`${arch}: clone is denied for namespace flags in the low word; the kernel ignores the high word`, () => {
    const { call } = on(arch);
    for (const [flag, bit] of Object.entries(CLONE_NEW)) {
      assert.deepEqual(call('clone', [bit | SIGCHLD]), DENIED, flag);
      assert.deepEqual(call('clone', [bit | SIGCHLD | HIGH]), DENIED, `${flag} with junk in the high word`);
      assert.deepEqual(call('clone', [bit << 32n]), ALLOW, `${flag} only in the high word is discarded by the kernel`);
    }
    // fork(), a thread, vfork: what libc and every runtime do.
    assert.deepEqual(call('clone', [SIGCHLD]), ALLOW);
    assert.deepEqual(call('clone', [0x3d0f00n /* pthread_create flags */]), ALLOW);
    assert.deepEqual(call('clone', [0x4111n /* CLONE_VM|CLONE_VFORK|SIGCHLD */]), ALLOW);
    // In clone() 0x80 is part of the exit-signal byte, not CLONE_NEWTIME.
    assert.deepEqual(call('clone', [CLONE_NEWTIME]), ALLOW);
  });

  test(`${arch}: clone3 gets ENOSYS so libc falls back to clone`, () => {
    assert.deepEqual(on(arch).call('clone3', [0n, 88n]), NOSYS);
    assert.deepEqual(on(arch, { observeWrites: true }).call('clone3'), NOSYS);
  });

  test(`${arch}: personality allows only PER_LINUX and the query, comparing the low 32 bits the kernel keeps`, () => {
    const { call } = on(arch);
    assert.deepEqual(call('personality', [0n]), ALLOW);
    assert.deepEqual(call('personality', [0xffffffffn]), ALLOW);
    assert.deepEqual(call('personality', [0xffffffffffffffffn]), ALLOW, 'truncates to the query');
    assert.deepEqual(call('personality', [HIGH]), ALLOW, 'truncates to PER_LINUX');
    for (const persona of [0x0040000n /* ADDR_NO_RANDOMIZE */, 0x0400000n /* READ_IMPLIES_EXEC */, 0x8n /* PER_LINUX32 */, 0x0020000n /* UNAME26 */, 1n]) {
      assert.deepEqual(call('personality', [persona]), DENIED, `0x${persona.toString(16)}`);
      assert.deepEqual(call('personality', [persona | HIGH]), DENIED, `0x${persona.toString(16)} with a high bit`);
    }
  });

  test(`${arch}: ioctl TIOCSTI and TIOCLINUX are denied even with high bits set; other requests pass`, () => {
    const { call } = on(arch);
    for (const request of [0x5412n, 0x541cn]) {
      assert.deepEqual(call('ioctl', [0n, request]), DENIED);
      assert.deepEqual(call('ioctl', [1n, request | HIGH]), DENIED, 'high bits are truncated by the kernel');
      assert.deepEqual(call('ioctl', [2n, request | 0xffffffff00000000n, 0x1234n]), DENIED);
    }
    for (const request of [0x5401n /* TCGETS */, 0x5413n /* TIOCGWINSZ */, 0x541bn /* FIONREAD */, 0x5411n, 0x541dn, 0x5412n << 32n]) {
      assert.deepEqual(call('ioctl', [0n, request]), ALLOW, `0x${request.toString(16)}`);
    }
  });

  for (const socketCall of ['socket', 'socketpair']) {
    test(`${arch}: ${socketCall} allows only the families the network mode needs`, () => {
      const expectations: [Partial<SeccompSpec>, number[]][] = [
        [{ network: 'off' }, [1, 2, 10, 16]],
        [{ network: 'off', denyIpSockets: true }, [1, 16]],
        [{ network: 'proxy' }, [1, 2, 10, 16]],
        [{ network: 'full' }, [1, 2, 10, 16]],
      ];
      for (const [overrides, allowed] of expectations) {
        const { call } = on(arch, overrides);
        for (let family = 0n; family < 64n; family++) {
          const expected: Action = allowed.includes(Number(family)) ? ALLOW : DENIED;
          const label = `${JSON.stringify(overrides)} family ${family}`;
          // Protocol 0 is NETLINK_ROUTE for netlink and the default protocol for the rest.
          assert.deepEqual(call(socketCall, [family, 1n, 0n]), expected, label);
          // int family: the kernel drops the high word, so the filter must too.
          assert.deepEqual(call(socketCall, [family | HIGH, 1n, 0n]), expected, `${label} with a high bit`);
          assert.deepEqual(call(socketCall, [family | 0xffffffff00000000n, 3n, 0n]), expected, `${label} with a high word`);
        }
        assert.deepEqual(call(socketCall, [1n << 32n]), DENIED, 'AF_UNSPEC after truncation');
        assert.deepEqual(call(socketCall, [0xffffffffn]), DENIED);
      }
    });

    test(`${arch}: ${socketCall} keeps only NETLINK_ROUTE when the network is off`, () => {
      const AF_NETLINK = 16n;
      const others = [4n /* SOCK_DIAG */, 9n /* AUDIT */, 12n /* NETFILTER */, 15n /* KOBJECT_UEVENT */, 16n /* GENERIC */, 6n /* XFRM */, 0xffffffffn];
      for (const overrides of [{ network: 'off' as const }, { network: 'off' as const, denyIpSockets: true }]) {
        const { call } = on(arch, overrides);
        assert.deepEqual(call(socketCall, [AF_NETLINK, 3n, 0n]), ALLOW);
        assert.deepEqual(call(socketCall, [AF_NETLINK, 3n, HIGH]), ALLOW, 'int protocol: the high word is dropped');
        for (const protocol of others) {
          assert.deepEqual(call(socketCall, [AF_NETLINK, 3n, protocol]), DENIED, `protocol ${protocol}`);
          assert.deepEqual(call(socketCall, [AF_NETLINK | HIGH, 3n, protocol | HIGH]), DENIED, `protocol ${protocol} with high bits`);
        }
        assert.deepEqual(call(socketCall, [17n /* AF_PACKET */, 3n, 0n]), DENIED, 'protocol 0 does not open other families');
      }
      for (const network of ['proxy', 'full'] as const) {
        const { call } = on(arch, { network });
        for (const protocol of [0n, ...others]) assert.deepEqual(call(socketCall, [AF_NETLINK, 3n, protocol]), ALLOW, `${network} protocol ${protocol}`);
      }
    });
  }

  test(`${arch}: observed write-intent calls go to the supervisor only when they can write`, () => {
    const { compiled, call } = on(arch, { observeWrites: true });
    assert.equal(compiled.usesNotify, true);
    const openat = (flags: bigint) => call('openat', [0xffffff9cn, 0x7f0000001000n, flags, 0o644n]);
    assert.deepEqual(openat(0n), ALLOW, 'O_RDONLY');
    assert.deepEqual(openat(O_CLOEXEC | O_DIRECTORY), ALLOW, 'O_RDONLY|O_CLOEXEC|O_DIRECTORY');
    assert.deepEqual(openat(O_APPEND), ALLOW, 'O_APPEND without write access cannot write');
    for (const flags of [O_WRONLY, O_RDWR, O_CREAT, O_TRUNC, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, O_RDWR | O_APPEND, O_TMPFILE | O_RDWR]) {
      assert.deepEqual(openat(flags), NOTIFY, `0x${flags.toString(16)}`);
    }
    // int flags: a high word neither makes a read a write nor hides a write.
    assert.deepEqual(openat(HIGH), ALLOW);
    assert.deepEqual(openat(O_WRONLY | HIGH), NOTIFY);
    for (const [nr, entry] of compiled.observed) {
      if (entry.flagsArg !== undefined) continue;
      assert.deepEqual(decide(compiled.program, { nr, arch: AUDIT_ARCH[arch], args: [0xffffff9cn, 0x1000n] }), NOTIFY, entry.name);
    }
    // Denials keep their own action next to observation.
    assert.deepEqual(call('mount'), DENIED);
  });

  test(`${arch}: without observeWrites, write-intent calls are plain syscalls`, () => {
    const { compiled, call } = on(arch);
    assert.equal(compiled.usesNotify, false);
    assert.equal(compiled.observed.size, 0);
    assert.deepEqual(call('openat', [0xffffff9cn, 0x1000n, O_WRONLY | O_CREAT]), ALLOW);
    assert.deepEqual(call('unlinkat', [0xffffff9cn, 0x1000n, 0n]), ALLOW);
    assert.deepEqual(call('openat2'), ALLOW);
  });

  test(`${arch}: every call without a rule is allowed, whatever its arguments`, () => {
    for (const overrides of [{}, { observeWrites: true, denyAction: 'notify' as const, network: 'full' as const }]) {
      const { compiled } = on(arch, overrides);
      const ruled = new Set([...compiled.denied.keys(), ...compiled.observed.keys(), syscallNumber(arch, 'clone3')!]);
      const args = randomArgs(0x243f6a8885a308d3n);
      for (let nr = 0; nr < 1024; nr++) {
        if (ruled.has(nr)) continue;
        assert.deepEqual(decide(compiled.program, { nr, arch: AUDIT_ARCH[arch], args: args.next().value as bigint[] }), ALLOW, `nr ${nr}`);
      }
    }
  });

  test(`${arch}: 'denied' and 'observed' describe exactly the calls this architecture has`, () => {
    const { compiled } = on(arch, { observeWrites: true });
    const table = SYSCALLS[arch];
    for (const [nr, { name }] of [...compiled.denied, ...compiled.observed]) assert.equal(table[name], nr, name);
    const names = new Set([...compiled.denied.values(), ...compiled.observed.values()].map((e) => e.name));
    for (const name of filterSyscallNames()) {
      if (name === 'clone3') continue;
      assert.equal(names.has(name), table[name] !== undefined, name);
    }
    const at = (name: string) => compiled.observed.get(syscallNumber(arch, name)!);
    assert.deepEqual(at('renameat2'), { name: 'renameat2', paths: [[0, 1], [2, 3]] });
    assert.deepEqual(at('symlinkat'), { name: 'symlinkat', paths: [[1, 2]] });
    assert.deepEqual(at('openat'), { name: 'openat', paths: [[0, 1]], flagsArg: 2 });
    assert.deepEqual(at('openat2'), { name: 'openat2', paths: [[0, 1]] });
    for (const name of ['fchmod', 'ftruncate', 'fsetxattr', 'fchown']) assert.equal(table[name], undefined, `${name} is fd-only and not observed`);
  });
}

test('x86_64: x32 calls are killed; nr -1 (a tracer skipping a call) is not', () => {
  const { compiled } = on('x86_64', { observeWrites: true });
  const at = (nr: number) => decide(compiled.program, { nr, arch: AUDIT_ARCH.x86_64 });
  for (const nr of [0, 2, 39, 56, 101, 257, 0x3fffffff]) assert.deepEqual(at((X32_SYSCALL_BIT | nr) >>> 0), KILL, `x32 ${nr}`);
  assert.deepEqual(at(0x7fffffff), KILL);
  assert.deepEqual(at(0x80000000), KILL);
  assert.deepEqual(at(0xfffffffe), KILL);
  assert.deepEqual(at(0xffffffff), ALLOW);
  assert.deepEqual(at(0x3fffffff), ALLOW);
});

test('aarch64: has no x32 ABI, so high numbers are simply unknown calls', () => {
  const { compiled } = on('aarch64');
  assert.deepEqual(decide(compiled.program, { nr: X32_SYSCALL_BIT | 39, arch: AUDIT_ARCH.aarch64 }), ALLOW);
});

test('programs fit the kernel limit and an unruled call runs a short, logarithmic path', () => {
  for (const arch of ARCHES) {
    for (const overrides of [{}, { observeWrites: true, denyAction: 'notify' as const, network: 'full' as const }]) {
      const { compiled } = on(arch, overrides);
      assert.equal(compiled.program.length, compiled.instructions * 8);
      assert.ok(compiled.instructions < BPF_MAX_INSTRUCTIONS);
      const ruled = compiled.denied.size + compiled.observed.size + 1;
      // arch check (2) + nr load (1) + x32 check (1) + ~log2(n) tree levels + a leaf of at most 4 + ret.
      const bound = 4 + Math.ceil(Math.log2(ruled)) + 4 + 1;
      for (const nr of [0, 1, 3, 9, 60, 231, 300]) {
        const steps = run(compiled.program, { nr, arch: AUDIT_ARCH[arch] }).steps;
        assert.ok(steps <= bound, `${arch} nr ${nr}: ${steps} steps > ${bound}`);
      }
    }
  }
});

test('invalid specs are refused with a one-line message naming the field', () => {
  const bad: [unknown, RegExp][] = [
    [{ ...spec('x86_64'), arch: 'i386' }, /arch must be/],
    [{ ...spec('x86_64'), network: 'on' }, /network must be/],
    [{ ...spec('x86_64'), denyAction: 'kill' }, /denyAction must be/],
    [{ ...spec('x86_64'), observeWrites: 'yes' }, /observeWrites must be/],
    [{ ...spec('x86_64'), network: 'proxy', denyIpSockets: true }, /denyIpSockets needs network 'off'/],
  ];
  for (const [s, message] of bad) {
    assert.throws(() => compileSeccomp(s as SeccompSpec), (e: Error) => message.test(e.message) && !e.message.includes('\n'));
  }
});
