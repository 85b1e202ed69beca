// Shared helpers for tests that run real sandboxes: temp workspaces with a fake home, the
// identities to run as (root and an unprivileged user), and running the CLI as either.
import { spawn, spawnSync } from 'node:child_process';
import { chownSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

/** Repository root (tests run from dist/test/…). */
export const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
export const CLI = join(ROOT, 'dist', 'src', 'cli', 'cordon.mjs');

export interface Identity {
  name: string;
  uid: number;
  gid: number;
  /** null: this process's own identity. */
  user: string | null;
}

function lookupUser(name: string): Identity | null {
  const r = spawnSync('id', ['-u', name], { encoding: 'utf8' });
  const g = spawnSync('id', ['-g', name], { encoding: 'utf8' });
  if (r.status !== 0 || g.status !== 0) return null;
  return { name, uid: Number(r.stdout.trim()), gid: Number(g.stdout.trim()), user: name };
}

/**
 * Who the sandbox tests run as: this process's user, and, when it is root and CORDON_TEST_USER
 * names an unprivileged user, that user too (root hides bugs).
 */
export function identities(): Identity[] {
  const self: Identity = { name: process.getuid?.() === 0 ? 'root' : 'user', uid: process.getuid!(), gid: process.getgid!(), user: null };
  const out = [self];
  const other = process.env.CORDON_TEST_USER;
  if (self.uid === 0 && other) {
    const id = lookupUser(other);
    if (!id) throw new Error(`CORDON_TEST_USER=${other} does not exist`);
    out.push(id);
  }
  return out;
}

/** A note for the test output when only one identity is available. */
export const identityNote =
  process.getuid?.() === 0 && !process.env.CORDON_TEST_USER ? ' (set CORDON_TEST_USER to also run as an unprivileged user)' : '';

export interface Scene {
  /** Base temp dir (removed by cleanup). */
  base: string;
  home: string;
  workspace: string;
  /** A directory outside every writable root that the identity can write to unsandboxed. */
  outside: string;
  id: Identity;
  env: Record<string, string>;
  cleanup(): void;
}

function chownTree(paths: string[], id: Identity): void {
  if (id.user === null) return;
  for (const p of paths) chownSync(p, id.uid, id.gid);
}

/**
 * Where scenes live: not under /tmp, /var/tmp or /run, which the sandbox replaces with private
 * directories (a probe there would pass for the wrong reason), and traversable by every identity.
 */
export function scratchRoot(): string {
  const dir = process.env.CORDON_TEST_DIR ?? (process.getuid?.() === 0 ? '/var/lib/cordon-test' : join(homedir(), '.cache', 'cordon-test'));
  mkdirSync(dir, { recursive: true, mode: 0o755 });
  return dir;
}

/** A workspace (git repo), a fake home with secrets, and an outside dir, owned by `id`. */
export function makeScene(id: Identity, opts: { git?: boolean } = {}): Scene {
  const base = mkdtempSync(join(scratchRoot(), 'scene-'));
  const home = join(base, 'home');
  const workspace = join(base, 'ws');
  const outside = join(base, 'outside');
  for (const d of [home, workspace, outside, join(home, '.ssh')]) mkdirSync(d, { recursive: true });
  writeFileSync(join(home, '.ssh', 'id_rsa'), 'PRIVATE KEY MATERIAL\n');
  writeFileSync(join(home, '.bashrc'), '# rc\n');
  writeFileSync(join(outside, 'target.txt'), 'original\n');
  const env: Record<string, string> = {
    PATH: process.env.PATH ?? '/usr/bin:/bin',
    HOME: home,
    LANG: 'C.UTF-8',
    GIT_AUTHOR_NAME: 'Test',
    GIT_AUTHOR_EMAIL: 'test@example.com',
    GIT_COMMITTER_NAME: 'Test',
    GIT_COMMITTER_EMAIL: 'test@example.com',
    XDG_CONFIG_HOME: join(home, '.config'),
    XDG_CACHE_HOME: join(home, '.cache'),
  };
  if (opts.git !== false) {
    const r = spawnSync('git', ['init', '-q', '-b', 'main', workspace], { env });
    if (r.status !== 0) throw new Error(`git init failed: ${r.stderr}`);
    writeFileSync(join(workspace, 'README'), 'hello\n');
  }
  // Owned by the identity, as a real user's files are.
  if (id.user !== null) {
    spawnSync('chown', ['-R', `${id.uid}:${id.gid}`, base]);
    chownTree([base], id);
  }
  return {
    base,
    home,
    workspace,
    outside,
    id,
    env,
    cleanup: () => rmSync(base, { recursive: true, force: true }),
  };
}

export interface Ran {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/** Runs a program as the scene's identity (with the scene's environment), bounded in time. */
export function runAs(scene: Scene, argv: string[], opts: { cwd?: string; input?: string; timeoutMs?: number; env?: Record<string, string> } = {}): Promise<Ran> {
  const env = { ...scene.env, ...opts.env };
  const full = scene.id.user === null ? argv : ['runuser', '-u', scene.id.user, '--', 'env', '-i', ...Object.entries(env).map(([k, v]) => `${k}=${v}`), ...argv];
  return new Promise((resolveRun, reject) => {
    const child = spawn(full[0]!, full.slice(1), { cwd: opts.cwd ?? scene.workspace, env, stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs ?? 60_000);
    child.on('error', reject);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolveRun({ code, signal, stdout, stderr });
    });
    child.stdin.on('error', () => undefined); // the program may exit without reading stdin
    child.stdin.end(opts.input ?? '');
  });
}

/** `cordon run [flags] -- sh -c SCRIPT` as the scene's identity. */
export function cordonSh(scene: Scene, script: string, flags: string[] = [], opts: { cwd?: string; input?: string; timeoutMs?: number; env?: Record<string, string> } = {}): Promise<Ran> {
  return runAs(scene, [process.execPath, CLI, 'run', ...flags, '--', 'sh', '-c', script], opts);
}

/** The same script without any sandbox: the control run of an escape probe. */
export function bareSh(scene: Scene, script: string, opts: { cwd?: string; env?: Record<string, string> } = {}): Promise<Ran> {
  return runAs(scene, ['sh', '-c', script], opts);
}

/** A unique marker for process-leak checks. */
export function marker(): string {
  return `cordon-marker-${process.pid}-${Math.random().toString(36).slice(2, 10)}`;
}

/** Host processes whose command line contains `text`, with their command lines. */
export function processesMatching(text: string): { pid: number; args: string }[] {
  const r = spawnSync('ps', ['-eo', 'pid=,args='], { encoding: 'utf8' });
  return r.stdout
    .split('\n')
    .map((l) => /^\s*(\d+)\s+(.*)$/.exec(l))
    .filter((m): m is RegExpExecArray => !!m && m[2]!.includes(text) && Number(m[1]) !== process.pid && !m[2]!.startsWith('ps '))
    .map((m) => ({ pid: Number(m[1]), args: m[2]! }));
}

/** PIDs of host processes whose command line contains `text`. */
export function pidsMatching(text: string): number[] {
  const r = spawnSync('pgrep', ['-f', text], { encoding: 'utf8' });
  return r.stdout.split('\n').filter(Boolean).map(Number).filter((p) => p !== process.pid);
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/**
 * A long-running host process owned by the scene's identity (a victim for signal probes), with its
 * exact PID: the shell prints its own PID and then becomes `sleep`.
 */
export async function startVictim(scene: Scene): Promise<{ pid: number; stop(): void }> {
  const script = 'echo $$; exec sleep 300';
  const child = scene.id.user ? spawn('runuser', ['-u', scene.id.user, '--', 'sh', '-c', script], { stdio: ['ignore', 'pipe', 'ignore'] }) : spawn('sh', ['-c', script], { stdio: ['ignore', 'pipe', 'ignore'] });
  const pid = await new Promise<number>((resolvePid, reject) => {
    child.stdout!.once('data', (d: Buffer) => resolvePid(Number(String(d).trim())));
    child.once('error', reject);
  });
  return {
    pid,
    stop: () => {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // already gone
      }
      child.kill('SIGKILL');
    },
  };
}

/** Kills every process whose command line contains `text`, with its whole process group (daemons' children too). */
export function killMatching(text: string): void {
  for (const p of processesMatching(text)) {
    const pgid = Number(spawnSync('ps', ['-o', 'pgid=', '-p', String(p.pid)], { encoding: 'utf8' }).stdout.trim());
    for (const target of [pgid > 1 ? -pgid : 0, p.pid]) {
      if (!target) continue;
      try {
        process.kill(target, 'SIGKILL');
      } catch {
        // gone
      }
    }
  }
}
