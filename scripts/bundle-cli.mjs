#!/usr/bin/env node
// Bundles the CLI into one file: Node loads one module instead of ~25, which is most of what
// `cordon run` costs before the sandbox starts. The library (dist/src/index.js) stays unbundled.
import { buildSync } from 'esbuild';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
buildSync({
  entryPoints: [join(root, 'dist/src/cli/main.js')],
  outfile: join(root, 'dist/src/cli/cordon.mjs'), // same depth as the modules: package-relative paths still resolve
  bundle: true,
  platform: 'node',
  format: 'esm',
  target: 'node20',
  logLevel: 'warning',
});
