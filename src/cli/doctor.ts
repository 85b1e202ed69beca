// `cordon doctor`: prints which layers this machine can enforce and how to fix what is missing.
import { runLinuxChecks, type Check } from '../linux/doctor.js';

export async function runDoctor(json: boolean): Promise<number> {
  let checks: Check[];
  /** Limits enforced only per process (rlimits) do not stop cordon from running: reported, not missing. */
  let limits: (Check & { limit?: string })[] = [];
  if (process.platform === 'linux') {
    checks = runLinuxChecks();
    const { limitChecks } = await import('../linux/limits/index.js');
    limits = limitChecks();
    const { nativeUnavailableReason } = await import('../network/relay.js');
    const relay = nativeUnavailableReason();
    limits.push(
      relay
        ? { layer: 'network relay (native)', ok: false, detail: `${relay}; allowed connections are relayed in JavaScript (slower)`, fix: 'install a C compiler and Node headers, then `npm rebuild cordon`' }
        : { layer: 'network relay (native)', ok: true, detail: 'allowed connections are relayed by worker threads outside JavaScript' },
    );
    // End to end: a real sandbox on the default policy.
    const { createSandbox } = await import('../sandbox.js');
    try {
      const sb = await createSandbox({ userConfig: null, policy: { workspace: process.cwd() } });
      const r = await sb.run(['sh', '-c', 'echo ok'], { timeoutMs: 10_000 });
      checks.push({ layer: 'end-to-end sandbox', ok: r.exitCode === 0 && r.stdout.trim() === 'ok', detail: r.exitCode === 0 ? '`sh -c "echo ok"` ran in a default sandbox' : `exit ${r.exitCode}: ${r.stderr.trim()}` });
    } catch (e) {
      checks.push({ layer: 'end-to-end sandbox', ok: false, detail: (e as Error).message.replace(/^cordon: /, '') });
    }
  } else {
    checks = [{ layer: 'platform', ok: false, detail: `${process.platform}: the enforcer is verified against a model only, not yet on this OS`, fix: 'run cordon on Linux for now' }];
  }
  if (json) {
    process.stdout.write(JSON.stringify([...checks, ...limits], null, 2) + '\n');
  } else {
    for (const c of checks) {
      process.stdout.write(`${c.ok ? '[ok]     ' : '[missing]'} ${c.layer}: ${c.detail}\n`);
      if (!c.ok && c.fix) process.stdout.write(`          fix: ${c.fix}\n`);
    }
    for (const c of limits) {
      process.stdout.write(`${c.ok ? '[ok]     ' : '[partial]'} ${c.layer}: ${c.detail}\n`);
      if (!c.ok && c.fix) process.stdout.write(`          to enforce it for the whole sandbox: ${c.fix}\n`);
    }
    const missing = checks.filter((c) => !c.ok).length;
    process.stdout.write(missing ? `\n${missing} layer(s) missing: cordon refuses to run without them unless you pass --allow-reduced.\n` : '\nAll layers are available.\n');
  }
  return checks.every((c) => c.ok) ? 0 : 1;
}
