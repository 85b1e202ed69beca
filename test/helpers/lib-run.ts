// Runs one command through the library with options given as JSON, prints the result as JSON.
// Lets tests drive the library as another user (runuser) with test-only hooks.
import { createSandbox, type SandboxOptions } from '../../src/sandbox.js';

const [optsJson, ...argv] = process.argv.slice(2);
const opts = JSON.parse(optsJson ?? '{}') as SandboxOptions & { timeoutMs?: number };
try {
  const sandbox = await createSandbox({ userConfig: null, ...opts });
  const r = await sandbox.run(argv, { timeoutMs: opts.timeoutMs });
  process.stdout.write(JSON.stringify(r));
} catch (e) {
  process.stdout.write(JSON.stringify({ error: (e as Error).message }));
}
