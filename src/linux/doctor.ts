// What this Linux machine can enforce, found by bounded end-to-end probes, with the fix for
// anything missing. Every probe has a timeout: a hanging probe must not hang `cordon doctor`.
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { hostFacts, type LinuxHostFacts } from './host.js';

export interface Check {
  layer: string;
  ok: boolean;
  detail: string;
  fix?: string;
}

function readSys(path: string): string | null {
  try {
    return readFileSync(path, 'utf8').trim();
  } catch {
    return null;
  }
}

const PROBE_TIMEOUT_MS = 10_000;

function probeBwrap(bwrap: string, extra: string[]): { ok: boolean; stderr: string } {
  const r = spawnSync(bwrap, ['--unshare-user', '--unshare-pid', '--unshare-net', '--unshare-ipc', '--die-with-parent', '--ro-bind', '/', '/', '--proc', '/proc', '--dev', '/dev', ...extra, '--', 'true'], {
    timeout: PROBE_TIMEOUT_MS,
    encoding: 'utf8',
    env: {},
  });
  return { ok: r.status === 0, stderr: (r.stderr || r.error?.message || '').trim() };
}

function userNamespaceFix(): string {
  if (readSys('/proc/sys/kernel/apparmor_restrict_unprivileged_userns') === '1')
    return 'AppArmor restricts unprivileged user namespaces (Ubuntu 23.10+). Allow them for bwrap only: write /etc/apparmor.d/bwrap with\n' +
      '    abi <abi/4.0>, include <tunables/global>\n    profile bwrap /usr/bin/bwrap flags=(unconfined) { userns, include if exists <local/bwrap> }\n' +
      '  then run `sudo apparmor_parser -r /etc/apparmor.d/bwrap` (or install the distribution\'s bwrap-userns-restrict profile)';
  if (readSys('/proc/sys/kernel/unprivileged_userns_clone') === '0') return 'enable them: `sudo sysctl -w kernel.unprivileged_userns_clone=1` (persist it in /etc/sysctl.d/)';
  if (readSys('/proc/sys/user/max_user_namespaces') === '0') return 'enable them: `sudo sysctl -w user.max_user_namespaces=15000` (persist it in /etc/sysctl.d/)';
  return 'user namespaces are unavailable here (a container without them?); run cordon on the host, or use --allow-reduced for the Landlock + seccomp tier';
}

export function runLinuxChecks(host: LinuxHostFacts = hostFacts()): Check[] {
  const checks: Check[] = [];
  if (!host.bwrap) {
    checks.push({ layer: 'bubblewrap', ok: false, detail: 'bwrap is not installed', fix: 'install it: `sudo apt-get install bubblewrap` (Fedora: `sudo dnf install bubblewrap`)' });
  } else {
    const v = spawnSync(host.bwrap, ['--version'], { encoding: 'utf8', timeout: PROBE_TIMEOUT_MS });
    checks.push({ layer: 'bubblewrap', ok: v.status === 0, detail: `${host.bwrap} (${(v.stdout || '').trim() || 'version unknown'})` });
    const userns = probeBwrap(host.bwrap, []);
    checks.push(userns.ok
      ? { layer: 'user, pid, network and ipc namespaces', ok: true, detail: 'a probe sandbox started and exited cleanly' }
      : { layer: 'user, pid, network and ipc namespaces', ok: false, detail: userns.stderr || 'the probe sandbox failed', fix: userNamespaceFix() });
    const nested = probeBwrap(host.bwrap, ['--disable-userns']);
    checks.push({ layer: 'nested user namespaces blocked', ok: nested.ok, detail: nested.ok ? 'bwrap --disable-userns works' : nested.stderr, fix: nested.ok ? undefined : 'needs bubblewrap ≥ 0.8 and user namespaces' });
  }
  if (!host.launcher) {
    checks.push({ layer: 'launcher (Landlock, seccomp, no_new_privs)', ok: false, detail: 'build/cordon-launcher is missing', fix: 'install a C compiler (`sudo apt-get install gcc`) and run `npm rebuild cordon`' });
  } else {
    const r = spawnSync(host.launcher, ['--probe'], { encoding: 'utf8', timeout: PROBE_TIMEOUT_MS });
    let probe: { landlock: number; seccompNotify: boolean } | null = null;
    try {
      probe = JSON.parse(r.stdout) as { landlock: number; seccompNotify: boolean };
    } catch {
      probe = null;
    }
    checks.push({ layer: 'launcher', ok: !!probe, detail: probe ? host.launcher : `the launcher did not answer: ${r.stderr || r.error?.message}` });
    if (probe) {
      checks.push(probe.landlock > 0
        ? { layer: `Landlock ABI ${probe.landlock}`, ok: true, detail: `write lock beneath writable roots${probe.landlock >= 6 ? '; abstract unix sockets and signals scoped' : ''}` }
        : { layer: 'Landlock', ok: false, detail: 'not available in this kernel', fix: 'use Linux ≥ 5.13 with `landlock` in the lsm= boot parameter (CONFIG_SECURITY_LANDLOCK=y), or accept the weaker tier with --allow-reduced' });
      checks.push({ layer: 'seccomp user notification', ok: probe.seccompNotify, detail: probe.seccompNotify ? 'denials are reported with the syscall and path' : 'not available: denials are enforced but not reported', fix: probe.seccompNotify ? undefined : 'use Linux ≥ 5.9' });
    }
  }
  const seccomp = /^Seccomp:\s*\d/m.test(readSys('/proc/self/status') ?? '');
  checks.push({ layer: 'seccomp', ok: seccomp, detail: seccomp ? 'available' : 'the kernel has no seccomp', fix: seccomp ? undefined : 'use a kernel built with CONFIG_SECCOMP_FILTER' });
  return checks;
}
