// Entry point of the runner process, started by the broker as the sandbox user
// (CreateProcessWithLogonW): `node runner-main.js --pipe \\.\pipe\cordon-<nonce>`.

import { serveRunner } from './runner.js';
import { Win32RunnerApi, openPipeClient } from './win32.js';

async function main(): Promise<number> {
  const index = process.argv.indexOf('--pipe');
  const name = index >= 0 ? process.argv[index + 1] : undefined;
  if (!name || !/^\\\\\.\\pipe\\cordon-[0-9a-f]{16,64}$/.test(name)) {
    process.stderr.write('cordon runner: --pipe \\\\.\\pipe\\cordon-<hex> is required\n');
    return 2;
  }
  const stream = await openPipeClient(name);
  return serveRunner(stream, await Win32RunnerApi.load());
}

if (process.platform === 'win32') {
  main().then((code) => process.exit(code), (e: unknown) => {
    process.stderr.write(`cordon runner: ${e instanceof Error ? e.message : String(e)}\n`);
    process.exit(1);
  });
}
