// Limits on the real kernel, as root and as an unprivileged user (CORDON_TEST_USER): each identity
// plans its limits from its own view of the host (here: cgroup v1 for root, rlimits for the user)
// and runs bounded workloads in bubblewrap under that plan. Every probe also runs without the
// limit, to show it would detect the escape.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { totalmem } from 'node:os';
import { join } from 'node:path';
import { RLIMIT } from '../../../src/linux/launcher-protocol.js';
import type { CgroupFacts } from '../../../src/linux/limits/detect.js';
import type { LimitsPlan } from '../../../src/linux/limits/plan.js';
import { DEFAULT_LIMITS } from '../../../src/policy/defaults.js';
import type { ResolvedLimits } from '../../../src/policy/types.js';
import { ROOT, marker, pidsMatching, scratchRoot } from '../../helpers/env.js';
import type { DriverRequest, HostProbe } from './fixtures/driver.js';
import type { LimitedRun } from './fixtures/sandbox.js';
import { BOUNDED_FORK_BOMB, PYTHON_MEMORY_HOG, nodeMemoryHog } from './fixtures/workloads.js';

const DRIVER = join(ROOT, 'dist', 'test', 'linux', 'limits', 'fixtures', 'driver.js');
const MiB = 1 << 20;
const NONE: ResolvedLimits = { timeoutMs: null, memoryBytes: null, pids: null, cpu: null };
const DEFAULTS: ResolvedLimits = { timeoutMs: null, memoryBytes: Math.floor(totalmem() * DEFAULT_LIMITS.memoryFraction), pids: DEFAULT_LIMITS.pids, cpu: null };

interface Identity {
  name: string;
  wrap: string[];
  root: boolean;
}

function identities(): { identity?: Identity; skip?: string }[] {
  if (process.platform !== 'linux') return [{ skip: 'Linux only' }];
  if (process.getuid?.() !== 0) return [{ identity: { name: `user ${process.getuid?.()}`, wrap: [], root: false } }, { skip: 'not root: the root half is skipped' }];
  const user = process.env.CORDON_TEST_USER;
  return [
    { identity: { name: 'root', wrap: [], root: true } },
    user ? { identity: { name: `user ${user}`, wrap: ['runuser', '-u', user, '--'], root: false } } : { skip: 'set CORDON_TEST_USER=probeuser to also run as an unprivileged user' },
  ];
}

interface Driven {
  facts: CgroupFacts;
  plan: LimitsPlan;
  run: LimitedRun;
  hostProbe: HostProbe;
}

function drive(identity: Identity, req: DriverRequest): Promise<Driven> {
  const [cmd, ...args] = [...identity.wrap, process.execPath, DRIVER, JSON.stringify(req)];
  return new Promise((resolveRun, reject) => {
    const child = spawn(cmd!, args, { stdio: ['ignore', 'pipe', 'pipe'], cwd: '/' });
    let out = '';
    let err = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (out += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (err += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), (req.timeoutMs ?? 60_000) + 30_000);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      const line = out.trim().split('\n').pop() ?? '';
      try {
        resolveRun(JSON.parse(line) as Driven);
      } catch {
        reject(new Error(`driver failed (exit ${code}): ${err || out}`));
      }
    });
  });
}

function bombResult(run: LimitedRun): { peak: number; refused: number } {
  const line = run.stdout.trim().split('\n').pop() ?? '';
  try {
    return JSON.parse(line) as { peak: number; refused: number };
  } catch {
    throw new Error(`the bomb printed no result (exit ${run.code}, signal ${run.signal}): ${run.stdout} ${run.stderr}`);
  }
}

const BOMB_TARGET = 200;
const PIDS_LIMIT = 64;

for (const { identity, skip } of identities()) {
  if (!identity) {
    test('limits on the real kernel (other identity)', { skip }, () => undefined);
    continue;
  }
  const who = identity.name;

  test(`${who}: both limit paths this host supports are the ones exercised`, async () => {
    const d = await drive(identity, { scenario: 'run', limits: { ...NONE, pids: PIDS_LIMIT, memoryBytes: 256 * MiB }, argv: ['true'] });
    const cgroupsWritable = d.facts.v1.some((h) => h.writable) || !!d.facts.v2?.base;
    if (identity.root) assert.ok(cgroupsWritable && d.plan.pids.mechanism.startsWith('cgroup'), `root should get cgroups here: ${JSON.stringify(d.plan.pids)}`);
    else if (!cgroupsWritable) assert.deepEqual([d.plan.memory.mechanism, d.plan.pids.mechanism], ['rlimit', 'rlimit']);
    assert.equal(d.run.code, 0);
    assert.deepEqual(d.run.leftover, []);
  });

  test(`${who}: a fork bomb is contained at the process limit and the host stays usable`, { timeout: 120_000 }, async (t) => {
    const tag = marker();
    const bomb = (limits: ResolvedLimits, hostSleepers = 0) =>
      drive(identity, {
        scenario: 'run',
        limits,
        argv: ['python3', '-c', BOUNDED_FORK_BOMB, String(BOMB_TARGET), '3', '1', tag],
        hostProbeOn: 'saturated',
        // More processes of this user on the host than the sandbox may have: a per-user count
        // (rather than per sandbox) would stop the bomb before its first fork.
        hostSleepers,
        timeoutMs: 60_000,
      });

    const control = await bomb(NONE);
    const free = bombResult(control.run);
    assert.ok(free.peak >= BOMB_TARGET, `without a limit the probe must reach ${BOMB_TARGET} processes (got ${free.peak})`);
    assert.equal(free.refused, 0);

    const limited = await bomb({ ...NONE, pids: PIDS_LIMIT }, PIDS_LIMIT + 16);
    if (limited.plan.pids.mechanism === 'none') return t.skip(`process limits are not enforceable for ${who} here: ${limited.plan.pids.note}`);
    const held = bombResult(limited.run);
    assert.ok(held.peak <= PIDS_LIMIT, `the sandbox had ${held.peak} processes with a limit of ${PIDS_LIMIT}`);
    assert.ok(held.peak > PIDS_LIMIT / 2, `only ${held.peak} processes started: the limit counted processes outside the sandbox`);
    assert.ok(held.refused > 0, 'no fork was refused');
    assert.equal(limited.run.code, 3);
    assert.deepEqual(limited.hostProbe, { ran: true, ok: true }, 'the host could not start a process while the bomb ran');
    if (limited.plan.pids.mechanism.startsWith('cgroup')) {
      assert.equal(limited.run.report.limitHit, 'pids');
      assert.equal(limited.run.report.evidence, 'kernel');
      assert.match(limited.run.report.reason ?? '', /process limit 64 reached/);
    } else {
      assert.equal(limited.plan.pids.mechanism, 'rlimit');
    }
    assert.deepEqual(limited.run.leftover, []);
    assert.deepEqual(pidsMatching(tag), [], 'bomb processes outlived the sandbox');
  });

  test(`${who}: RLIMIT_NPROC bounds an unprivileged user's sandbox but never host root's (why root needs a cgroup)`, { timeout: 90_000 }, async () => {
    const d = await drive(identity, {
      scenario: 'run',
      limits: NONE,
      rawRlimits: [[RLIMIT.NPROC, PIDS_LIMIT, PIDS_LIMIT]],
      argv: ['python3', '-c', BOUNDED_FORK_BOMB, String(BOMB_TARGET), '3', '0.5'],
      timeoutMs: 60_000,
    });
    const r = bombResult(d.run);
    if (identity.root) assert.ok(r.peak >= BOMB_TARGET, `root was limited by RLIMIT_NPROC (peak ${r.peak}): the planner could rely on it`);
    else assert.ok(r.peak <= PIDS_LIMIT && r.refused > 0, `RLIMIT_NPROC did not bound the user's sandbox (peak ${r.peak})`);
  });

  for (const [lang, argv] of [
    ['python', ['python3', '-c', PYTHON_MEMORY_HOG, '16', '1024']],
    ['node', ['node', '-e', nodeMemoryHog(16, 1024)]],
  ] as const) {
    test(`${who}: a ${lang} memory hog is stopped with a clear reason`, { timeout: 120_000 }, async () => {
      const control = await drive(identity, { scenario: 'run', limits: NONE, argv: [...argv], timeoutMs: 60_000 });
      assert.equal(control.run.code, 0, `the hog must finish without a limit: ${control.run.stderr.slice(-300)}`);
      assert.match(control.run.stdout, /done/);

      const limited = await drive(identity, { scenario: 'run', limits: { ...NONE, memoryBytes: 256 * MiB }, argv: [...argv], timeoutMs: 60_000 });
      assert.doesNotMatch(limited.run.stdout, /done/, 'the hog got its 1 GiB despite a 256 MiB limit');
      assert.equal(limited.run.killedByTimeout, false, 'the hog hung instead of failing');
      assert.notEqual(limited.run.code, 0);
      assert.equal(limited.run.report.limitHit, 'memory');
      assert.match(limited.run.report.reason ?? '', /memory limit 256 MiB/);
      if (limited.plan.memory.mechanism.startsWith('cgroup')) {
        assert.equal(limited.run.report.evidence, 'kernel');
        assert.equal(limited.run.signal, 9, 'the OOM killer ends a process with SIGKILL');
        assert.ok((limited.run.usage?.peakMemoryBytes ?? 0) <= 256 * MiB);
      } else {
        assert.equal(limited.plan.memory.mechanism, 'rlimit');
        assert.equal(limited.run.report.evidence, 'inferred');
      }
      assert.deepEqual(limited.run.leftover, []);
    });
  }

  test(`${who}: everyday tools are not bothered by the default limits, nor by 1 GiB / 256 processes`, { timeout: 240_000 }, async () => {
    // A small TypeScript project readable by every identity (not under /tmp: the sandbox hides it).
    const proj = mkdtempSync(join(scratchRoot(), 'limits-tsc-'));
    try {
      chmodSync(proj, 0o755);
      mkdirSync(join(proj, 'src'));
      writeFileSync(join(proj, 'tsconfig.json'), JSON.stringify({ compilerOptions: { strict: true, target: 'es2022', module: 'nodenext', rootDir: 'src', types: [] }, include: ['src'] }));
      for (let i = 0; i < 20; i++) writeFileSync(join(proj, 'src', `m${i}.ts`), `export const v${i}: number = ${i};\nexport function f${i}(x: string): string { return x.repeat(${i}); }\n`);
      spawnSync('chmod', ['-R', 'a+rX', proj]);
      const tsc = join(ROOT, 'node_modules', '.bin', 'tsc');
      const tools: string[][] = [
        ['node', '-e', '0'],
        ['npx', 'tsc', '-v'],
        ['npm', '--version'],
        [tsc, '-p', proj, '--noEmit'],
        // Node's fetch runs on WebAssembly, which reserves ~10 GiB of address space: RLIMIT_AS would break it.
        ['node', '-e', 'new WebAssembly.Memory({ initial: 1 }); console.log("wasm ok")'],
      ];
      for (const limits of [DEFAULTS, { ...NONE, memoryBytes: 1024 * MiB, pids: 256 }]) {
        for (const argv of tools) {
          const d = await drive(identity, { scenario: 'run', limits, argv, cwd: ROOT, env: { npm_config_update_notifier: 'false' }, timeoutMs: 120_000 });
          const what = `${argv.join(' ')} under memory ${limits.memoryBytes} / pids ${limits.pids} (${d.plan.memory.mechanism})`;
          assert.equal(d.run.code, 0, `${what} failed: ${d.run.stderr.slice(-400)}`);
          assert.equal(d.run.report.limitHit, null, what);
          assert.deepEqual(d.run.leftover, []);
        }
      }
    } finally {
      rmSync(proj, { recursive: true, force: true });
    }
  });
}

test('RLIMIT_AS, which the planner avoids, breaks Node\'s WebAssembly where RLIMIT_DATA does not', { timeout: 60_000, skip: process.platform !== 'linux' }, async () => {
  const self: Identity = { name: 'self', wrap: [], root: process.getuid?.() === 0 };
  const wasm = ['node', '-e', 'new WebAssembly.Memory({ initial: 1 }); console.log("wasm ok")'];
  const withAs = await drive(self, { scenario: 'run', limits: NONE, rawRlimits: [[RLIMIT.AS, 4096 * MiB, 4096 * MiB]], argv: wasm });
  assert.notEqual(withAs.run.code, 0, 'WebAssembly.Memory worked under RLIMIT_AS 4 GiB');
  const withData = await drive(self, { scenario: 'run', limits: NONE, rawRlimits: [[RLIMIT.DATA, 1024 * MiB, 1024 * MiB]], argv: wasm });
  assert.equal(withData.run.code, 0, withData.run.stderr);
});
