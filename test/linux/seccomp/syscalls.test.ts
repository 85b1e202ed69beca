import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { SYSCALLS, hostArch, syscallNumber } from '../../../src/linux/seccomp/syscalls.js';
import { filterSyscallNames } from '../../../src/linux/seccomp/filter.js';

const X86_64_HEADER = '/usr/include/x86_64-linux-gnu/asm/unistd_64.h';
const GENERIC_HEADER = '/usr/include/asm-generic/unistd.h';
/** Calls aarch64 never had (libc uses the *at forms). */
const LEGACY_ONLY = ['open', 'creat', 'mkdir', 'mknod', 'unlink', 'rmdir', 'rename', 'link', 'symlink', 'chmod', 'chown', 'lchown', 'utime', 'utimes', 'futimesat'];

/** `#define __NR_name N` lines; asm-generic also maps `__NR_name __NR3264_name` on 64-bit. */
function parseHeader(text: string): Map<string, number> {
  const direct = new Map<string, number>();
  const nr3264 = new Map<string, number>();
  for (const m of text.matchAll(/^#define __NR_(\w+)\s+(\d+)\s*$/gm)) direct.set(m[1]!, Number(m[2]));
  for (const m of text.matchAll(/^#define __NR3264_(\w+)\s+(\d+)\s*$/gm)) nr3264.set(m[1]!, Number(m[2]));
  for (const m of text.matchAll(/^#define __NR_(\w+)\s+__NR3264_(\w+)\s*$/gm)) {
    const n = nr3264.get(m[2]!);
    if (n !== undefined && !direct.has(m[1]!)) direct.set(m[1]!, n);
  }
  return direct;
}

/** The header's highest number; our table may hold newer calls above it. */
function highest(header: Map<string, number>): number {
  return Math.max(...header.values());
}

test('every name the filter uses exists on x86_64, and on aarch64 unless it is a legacy-only call', () => {
  for (const name of filterSyscallNames()) {
    assert.notEqual(syscallNumber('x86_64', name), undefined, `x86_64 lacks ${name}`);
    if (LEGACY_ONLY.includes(name)) assert.equal(syscallNumber('aarch64', name), undefined, `aarch64 should lack ${name}`);
    else assert.notEqual(syscallNumber('aarch64', name), undefined, `aarch64 lacks ${name}`);
  }
});

test('no two names share a number on one architecture', () => {
  for (const arch of ['x86_64', 'aarch64'] as const) {
    const numbers = Object.values(SYSCALLS[arch]);
    assert.equal(new Set(numbers).size, numbers.length, arch);
  }
});

test('the x86_64 table matches asm/unistd_64.h', { skip: !existsSync(X86_64_HEADER) && `${X86_64_HEADER} not installed` }, () => {
  const header = parseHeader(readFileSync(X86_64_HEADER, 'utf8'));
  assert.ok(header.size > 300, 'header parsed');
  for (const [name, nr] of Object.entries(SYSCALLS.x86_64)) {
    if (header.has(name)) assert.equal(nr, header.get(name), name);
    else assert.ok(nr > highest(header), `${name} (${nr}) is missing from the header but not newer than it`);
  }
});

test('the aarch64 table matches asm-generic/unistd.h, which lacks the legacy calls', { skip: !existsSync(GENERIC_HEADER) && `${GENERIC_HEADER} not installed` }, () => {
  const header = parseHeader(readFileSync(GENERIC_HEADER, 'utf8'));
  assert.ok(header.size > 250, 'header parsed');
  for (const [name, nr] of Object.entries(SYSCALLS.aarch64)) {
    if (header.has(name)) assert.equal(nr, header.get(name), name);
    else assert.ok(nr > highest(header), `${name} (${nr}) is missing from the header but not newer than it`);
  }
  for (const name of LEGACY_ONLY) assert.equal(header.has(name), false, `asm-generic defines ${name}`);
});

// Numbers newer than the installed headers: the running kernel must know them and behave like the
// named call (a bad-path error, not ENOSYS and not something else).
test('calls newer than the headers behave as the named call on this kernel', { skip: hostArch() === undefined && 'unsupported host architecture' }, (t) => {
  const arch = hostArch()!;
  const py = existsSync('/usr/bin/python3') ? '/usr/bin/python3' : 'python3';
  const script = `
import ctypes, json, sys
libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long
def sc(*a):
    ctypes.set_errno(0)
    r = libc.syscall(*[ctypes.c_long(x) if isinstance(x, int) else x for x in a])
    return 0 if r >= 0 else ctypes.get_errno()
n = json.loads(sys.argv[1])
p = b'/cordon-no-such-path'
print(json.dumps({
  'fchmodat2': sc(n['fchmodat2'], -100, p, 0o644, 0),
  'removexattrat': sc(n['removexattrat'], -100, p, 0, b'user.x'),
  'open_tree_attr': sc(n['open_tree_attr'], -100, p, 0, None, 0),
  'setxattrat_badsize': sc(n['setxattrat'], -100, p, 0, b'user.x', None, 0),
  'file_setattr_badsize': sc(n['file_setattr'], -100, p, None, 0, 0),
}))`;
  const numbers = Object.fromEntries(['fchmodat2', 'removexattrat', 'open_tree_attr', 'setxattrat', 'file_setattr'].map((n) => [n, syscallNumber(arch, n)]));
  const out = spawnSync(py, ['-c', script, JSON.stringify(numbers)], { encoding: 'utf8', timeout: 20_000 });
  assert.equal(out.status, 0, out.stderr);
  const r = JSON.parse(out.stdout) as Record<string, number>;
  const ENOENT = 2, EINVAL = 22, ENOSYS = 38;
  const expected: Record<string, number> = { fchmodat2: ENOENT, removexattrat: ENOENT, open_tree_attr: ENOENT, setxattrat_badsize: EINVAL, file_setattr_badsize: EINVAL };
  for (const [name, errno] of Object.entries(expected)) {
    // A kernel older than the call answers ENOSYS; any other answer means a wrong number.
    if (r[name] === ENOSYS) t.diagnostic(`${name}: not in this kernel (ENOSYS), number unchecked`);
    else assert.equal(r[name], errno, name);
  }
});
