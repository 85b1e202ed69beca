// Where things are: the repository, the peers' install prefix, the compiled bench files.
// Computed from this file's compiled location (dist/bench/layout.js).
import { accessSync, constants, mkdirSync } from 'node:fs';
import { homedir } from 'node:os';
import { delimiter, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { MemoryProbe } from './columns.js';

export const REPO_ROOT = fileURLToPath(new URL('../../', import.meta.url));
/** Git-ignored scratch space of the bench: peers' install prefix, Codex's home, results. */
export const BENCH_STATE_DIR = join(REPO_ROOT, '.bench');
export const PEERS_DIR = join(BENCH_STATE_DIR, 'peers');
export const MEMORY_DRIVER = fileURLToPath(new URL('./memory-driver.js', import.meta.url));
/** How many commands the memory driver runs through a library column before it exits. */
export const MEMORY_DRIVER_COMMANDS = 20;

/** A library column's memory probe: a Node host that loads the library and runs `true` repeatedly. */
export function memoryDriverProbe(columnId: string, workspace: string): MemoryProbe {
  return {
    file: process.execPath,
    args: [MEMORY_DRIVER, columnId, workspace, String(MEMORY_DRIVER_COMMANDS)],
    cwd: workspace,
    baselineId: 'node-host',
  };
}

/**
 * A private, writable directory for bench state: `.bench/<name>` normally, or under
 * `~/.cache/cordon-bench/` when `.bench/` belongs to another user (a root run made it).
 */
export function writableStateDir(name: string): string {
  for (const base of [BENCH_STATE_DIR, join(homedir(), '.cache', 'cordon-bench')]) {
    const directory = join(base, name);
    try {
      mkdirSync(directory, { recursive: true });
      accessSync(directory, constants.W_OK);
      return directory;
    } catch {
      // not writable by this user; try the next place
    }
  }
  throw new Error(`no writable place for bench state "${name}": make ${BENCH_STATE_DIR} writable or set HOME`);
}

/** Absolute path of an executable found on PATH, or null. */
export function findOnPath(name: string): string | null {
  for (const directory of (process.env.PATH ?? '').split(delimiter)) {
    if (directory === '') continue;
    const candidate = join(directory, name);
    try {
      accessSync(candidate, constants.X_OK);
      return candidate;
    } catch {
      // not here; keep looking
    }
  }
  return null;
}
