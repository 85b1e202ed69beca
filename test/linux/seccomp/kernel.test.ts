// The compiled filter on the real kernel, loaded by bubblewrap's own `--seccomp FD` (bwrap sets
// no_new_privs and installs it just before exec). Every probe runs twice per identity: without the
// filter (it must reach the kernel: success, or an error other than the filter's) and with it (it
// must get the filter's answer). 'notify' programs need cordon's launcher for the listener; here we
// only check that the kernel accepts them and that, with nobody listening, they fail closed.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { compileSeccomp, ENOSYS, EPERM, type SeccompSpec } from '../../../src/linux/seccomp/filter.js';
import { SYSCALLS, hostArch, type Arch } from '../../../src/linux/seccomp/syscalls.js';
import { PROBE_SCRIPT } from './probes.js';

const BWRAP = '/usr/bin/bwrap';
const PYTHON = existsSync('/usr/bin/python3') ? '/usr/bin/python3' : 'python3';
const SIGSYS = 31;
const TIMEOUT_MS = 120_000;

const arch = hostArch();
const unsupported =
  process.platform !== 'linux' ? 'Linux only' : arch === undefined ? `no seccomp tables for ${process.arch}` : false;

/** Who runs the sandbox, and the bwrap flags that give its probes the most privilege they can have. */
interface Identity {
  name: string;
  /** Prefix that switches user (runuser), or nothing. */
  wrap: string[];
  /** Flags for probe runs: as much privilege as this identity can get, so the unfiltered run shows what the filter stops. */
  privileged: string[];
  /** Calls that need capabilities in the initial user namespace: this identity's unfiltered run cannot reach past the kernel's own EPERM. */
  kernelRefuses: string[];
}

function identities(): { identity?: Identity; skip?: string }[] {
  const out: { identity?: Identity; skip?: string }[] = [];
  const isRoot = process.getuid?.() === 0;
  const inOwnUserns = ['--unshare-user', '--uid', '0', '--gid', '0', '--cap-add', 'ALL'];
  const initNsOnly = ['acct', 'swapon', 'swapoff'];
  if (isRoot) {
    // Real root with every capability and no user namespace: the strongest baseline there is.
    out.push({ identity: { name: 'root', wrap: [], privileged: ['--cap-add', 'ALL'], kernelRefuses: [] } });
    const user = process.env.CORDON_TEST_USER;
    if (user) out.push({ identity: { name: `unprivileged user ${user}`, wrap: ['runuser', '-u', user, '--'], privileged: inOwnUserns, kernelRefuses: initNsOnly } });
    else out.push({ skip: 'running as root without CORDON_TEST_USER: the unprivileged half is skipped (set CORDON_TEST_USER=probeuser)' });
  } else {
    out.push({ identity: { name: `unprivileged user ${process.getuid?.()}`, wrap: [], privileged: inOwnUserns, kernelRefuses: initNsOnly } });
    out.push({ skip: 'not running as root: the root half is skipped' });
  }
  return out;
}

interface RunResult {
  status: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/** Run argv in a fresh bwrap sandbox (read-only /, private /tmp, pid, net and ipc namespaces). */
function inSandbox(identity: Identity, flags: string[], program: Buffer | undefined, argv: string[]): Promise<RunResult> {
  const bwrapArgs = [
    '--ro-bind', '/', '/', '--dev', '/dev', '--proc', '/proc', '--tmpfs', '/tmp',
    '--unshare-pid', '--unshare-net', '--unshare-ipc', '--die-with-parent',
    '--setenv', 'HOME', '/tmp', '--chdir', '/tmp',
    ...flags,
    ...(program ? ['--seccomp', '3'] : []),
    '--', ...argv,
  ];
  const [command, ...args] = [...identity.wrap, BWRAP, ...bwrapArgs];
  return new Promise((resolve, reject) => {
    const child = spawn(command!, args, {
      cwd: '/',
      stdio: ['ignore', 'pipe', 'pipe', program ? 'pipe' : 'ignore'],
      env: { PATH: '/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin', LANG: 'C.UTF-8' },
    });
    const timer = setTimeout(() => child.kill('SIGKILL'), TIMEOUT_MS); // bwrap --die-with-parent takes the sandbox down too
    let stdout = '';
    let stderr = '';
    child.stdout!.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr!.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    if (program) {
      const fd3 = child.stdio[3] as NodeJS.WritableStream;
      fd3.on('error', () => {}); // bwrap may exit before reading; the exit status reports it
      fd3.end(program);
    }
    child.on('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
    child.on('close', (status, signal) => {
      clearTimeout(timer);
      resolve({ status, signal, stdout, stderr });
    });
  });
}

type ProbeResults = Record<string, number | string>;

async function probe(identity: Identity, program: Buffer | undefined, only?: string[]): Promise<ProbeResults> {
  const config = JSON.stringify({ nr: SYSCALLS[arch!], arch, only: only ?? null });
  const r = await inSandbox(identity, identity.privileged, program, [PYTHON, '-c', PROBE_SCRIPT, config]);
  assert.equal(r.status, 0, `probe run failed (${r.signal ?? r.status}): ${r.stderr}`);
  return JSON.parse(r.stdout) as ProbeResults;
}

function compile(overrides: Partial<SeccompSpec> = {}): Buffer {
  return compileSeccomp({ arch: arch!, network: 'off', denyAction: 'errno', observeWrites: false, ...overrides }).program;
}

/** What the filter must answer for a probe (with the default program: network off, errno). */
function filteredAnswer(name: string): number | string {
  if (name.startsWith('ok:') || name === 'socket:AF_INET' || name === 'socket:AF_INET6') return 0;
  if (name === 'clone3') return ENOSYS;
  if (name.startsWith('cmd:')) return 'exit:1';
  if (name.startsWith('x32:') || name.startsWith('i386:')) return `signal:${SIGSYS}`;
  return EPERM;
}

for (const { identity, skip } of identities()) {
  if (!identity) {
    test(`seccomp on the kernel: ${skip}`, { skip: skip ?? true }, () => {});
    continue;
  }
  const who = identity.name;

  test(`${who}: every denied family reaches the kernel without the filter and is refused with it`, { skip: unsupported }, async (t) => {
    const program = compile();
    const [without, withFilter] = await Promise.all([probe(identity, undefined), probe(identity, program)]);
    assert.deepEqual(Object.keys(withFilter).sort(), Object.keys(without).sort());
    assert.ok(Object.keys(without).length > 90, 'probe set ran');
    for (const name of Object.keys(without)) {
      const expected = filteredAnswer(name);
      assert.equal(withFilter[name], expected, `${name} under the filter`);
      if (expected === 0) {
        assert.equal(without[name], 0, `${name} must work without the filter too`);
      } else if (identity.kernelRefuses.includes(name)) {
        // Needs capabilities in the initial user namespace: the kernel refuses before the filter
        // matters. The root half shows this probe catching the call.
        assert.equal(without[name], EPERM, `${name}: the kernel itself refuses it for ${who}`);
        t.diagnostic(`${name}: kernel refuses it for ${who} even without the filter (checked as root)`);
      } else {
        assert.notEqual(without[name], expected, `${name}: without the filter the probe must reach the kernel, so the filter is what refuses it`);
        if (typeof expected === 'string' && expected.startsWith('exit:')) assert.equal(without[name], 0, `${name} without the filter`);
      }
    }
  });

  test(`${who}: network 'full' admits all of netlink but not packet or vsock; denyIpSockets refuses IP`, { skip: unsupported }, async () => {
    const names = ['socket:AF_NETLINK sock_diag', 'ok:socket AF_NETLINK route', 'socket:AF_PACKET', 'socket:AF_VSOCK', 'socket:AF_INET', 'socket:AF_INET6', 'ok:socket AF_UNIX'];
    const full = await probe(identity, compile({ network: 'full' }), names);
    assert.deepEqual(full, { 'socket:AF_NETLINK sock_diag': 0, 'ok:socket AF_NETLINK route': 0, 'socket:AF_PACKET': EPERM, 'socket:AF_VSOCK': EPERM, 'socket:AF_INET': 0, 'socket:AF_INET6': 0, 'ok:socket AF_UNIX': 0 });
    const noIp = await probe(identity, compile({ network: 'off', denyIpSockets: true }), names);
    assert.deepEqual(noIp, { 'socket:AF_NETLINK sock_diag': EPERM, 'ok:socket AF_NETLINK route': 0, 'socket:AF_PACKET': EPERM, 'socket:AF_VSOCK': EPERM, 'socket:AF_INET': EPERM, 'socket:AF_INET6': EPERM, 'ok:socket AF_UNIX': 0 });
  });

  test(`${who}: a notify program loads; with no supervisor listening its denials and observed writes fail closed`, { skip: unsupported }, async () => {
    const program = compile({ denyAction: 'notify', observeWrites: true });
    const r = await probe(identity, program, ['mount', 'unshare:NEWUSER', 'clone3', 'ok:openat write', 'ok:openat read', 'ok:socket AF_UNIX']);
    // The kernel answers SECCOMP_RET_USER_NOTIF with ENOSYS when no listener exists: the launcher
    // must keep its supervisor alive, or observed writes break.
    assert.deepEqual(r, { mount: ENOSYS, 'unshare:NEWUSER': ENOSYS, clone3: ENOSYS, 'ok:openat write': ENOSYS, 'ok:openat read': 0, 'ok:socket AF_UNIX': 0 });
  });

  test(`${who}: normal tools work under the filter`, { skip: unsupported }, async () => {
    // One command per line: `set -e` does not stop at a failure inside an && list.
    const script = [
      'set -eu',
      'cd /tmp',
      'git init -q repo',
      'cd repo',
      'echo hi > a.txt',
      'git add a.txt',
      'git -c user.name=cordon -c user.email=cordon@example.invalid commit -q -m first',
      'git log --oneline | grep -q first',
      'cd /tmp',
      'printf "all:\\n\\techo made > made.txt\\n" > Makefile',
      'make -s',
      'grep -q made made.txt',
      'printf "#include <stdio.h>\\nint main(void) { puts(\\"compiled\\"); return 0; }\\n" > hello.c',
      'cc -o hello hello.c',
      './hello | grep -q compiled',
      `${PYTHON} -c 'import subprocess; assert subprocess.check_output(["echo", "py"]).strip() == b"py"'`,
      `${process.execPath} -e 'const { execSync } = require("node:child_process"); if (execSync("echo node | cat").toString().trim() !== "node") process.exit(1)'`,
      `${process.execPath} -e 'if (!("lo" in require("node:os").networkInterfaces())) process.exit(1)'`,
      'test "$(echo c a b | tr " " "\\n" | sort | tail -n 1)" = c',
      'echo tools-ok',
    ].join('\n');
    // No extra capabilities: the filter as a real command would see it.
    const flags = identity.privileged.includes('--unshare-user') ? ['--unshare-user'] : [];
    for (const program of [compile(), compile({ network: 'full' })]) {
      const r = await inSandbox(identity, flags, program, ['/bin/sh', '-c', script]);
      assert.equal(r.stdout.trim(), 'tools-ok', `tools failed under the filter (${r.signal ?? r.status}): ${r.stderr}`);
    }
  });
}

test('bubblewrap is installed (the kernel tests above need it)', { skip: unsupported }, () => {
  assert.ok(existsSync(BWRAP), `${BWRAP} is missing: install bubblewrap (apt-get install bubblewrap)`);
});
