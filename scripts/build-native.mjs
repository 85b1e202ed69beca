#!/usr/bin/env node
// Builds cordon's small native parts with the machine's C compiler (run by `npm install`).
// A part that cannot be built is not fatal here: `cordon doctor` reports it, and the policy
// decides whether running without it is allowed.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, statSync, readdirSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const out = join(root, 'build');
const quiet = process.argv.includes('--quiet');
const cc = process.env.CC || 'cc';
const nodeInclude = resolve(dirname(process.execPath), '..', 'include', 'node');

/** Each target: one output, its C sources, and compiler flags. */
const targets = [
  {
    name: 'cordon-launcher',
    sources: ['native/launcher.c'],
    flags: ['-O2', '-Wall', '-Wextra', '-Werror=implicit-function-declaration', '-D_GNU_SOURCE'],
  },
  {
    name: 'cordon_splice.node',
    sources: ['native/splice.c'],
    flags: ['-O2', '-Wall', '-Wextra', '-D_GNU_SOURCE', '-shared', '-fPIC', '-pthread', `-I${nodeInclude}`],
    needs: [join(nodeInclude, 'node_api.h')],
  },
];

function newestMtime(paths) {
  return Math.max(...paths.map((p) => statSync(p).mtimeMs));
}

mkdirSync(out, { recursive: true });
let failed = 0;
for (const t of targets) {
  const sources = t.sources.map((s) => join(root, s));
  if (!sources.every((s) => existsSync(s))) continue; // part not written yet
  const missing = (t.needs ?? []).filter((n) => !existsSync(n));
  if (missing.length) {
    console.warn(`cordon: not building ${t.name}: missing ${missing.join(', ')}`);
    failed++;
    continue;
  }
  const output = join(out, t.name);
  const headers = readdirSync(join(root, 'native')).filter((f) => f.endsWith('.h')).map((f) => join(root, 'native', f));
  if (existsSync(output) && statSync(output).mtimeMs >= newestMtime([...sources, ...headers, fileURLToPath(import.meta.url)])) continue;
  const args = [...t.flags, '-o', output, ...sources];
  const r = spawnSync(cc, args, { stdio: ['ignore', 'inherit', 'inherit'] });
  if (r.status !== 0) {
    console.warn(`cordon: could not build ${t.name} with \`${cc} ${args.join(' ')}\`` + (r.error ? `: ${r.error.message}` : ''));
    failed++;
  } else if (!quiet) {
    console.log(`cordon: built ${t.name}`);
  }
}
if (failed && !quiet) console.warn('cordon: run `cordon doctor` to see which layers this machine can enforce.');
