// `cordon run`, `cordon shell`, `cordon policy show`: flags in, library calls, a short summary out.
import { homedir } from 'node:os';
import { isatty } from 'node:tty';
import { createSandbox, type CommandResult, type Sandbox } from '../sandbox.js';
import { displayPath } from '../policy/resolve.js';
import { flagsToPolicy } from './flags.js';
import { trace } from '../trace.js';

type Values = Record<string, unknown>;

async function sandboxFromFlags(values: Values): Promise<Sandbox> {
  return createSandbox({
    overrides: flagsToPolicy(values as never),
    policyFile: values.policy as string | undefined,
    userConfig: values['no-user-config'] ? null : undefined,
    reportWrites: !values['no-report-writes'],
  });
}

function say(line: string): void {
  process.stderr.write(`cordon: ${line}\n`);
}

function printExplain(sandbox: Sandbox): void {
  for (const l of sandbox.explain()) say(`${l.active ? '[on] ' : '[off]'} ${l.layer}: ${l.detail}`);
  say(`bwrap ${sandbox.bwrapArgs.join(' ')}`);
}

/** Prints what the sandbox denied and what the user should know; returns the exit code. */
function summarize(r: CommandResult, cmd: string, quiet: boolean, timeoutMs: number | null): number {
  if (r.exitCode === 127 && !r.signal) say(`${cmd}: command not found in the sandbox`);
  else if (r.exitCode === 126 && !r.signal) say(`${cmd}: cannot be executed in the sandbox`);
  if (r.timedOut) say(`timed out after ${timeoutMs !== null ? `${timeoutMs / 1000}s` : 'the time limit'}; the command and everything it started were stopped`);
  if (!quiet) {
    for (const v of r.violations.slice(0, 20)) say(v.message);
    if (r.violations.length > 20) say(`… and ${r.violations.length - 20} more denials`);
  }
  for (const n of r.notices) say(n);
  return r.exitCode;
}

/** Windows: verified against a model only (docs/windows.md); the enforcer runs the same policy sources. */
async function runOnWindows(values: Values, argv: string[]): Promise<number> {
  const { loadPolicy } = await import('../policy/load.js');
  const loaded = loadPolicy({
    flags: flagsToPolicy(values as never),
    policyFile: values.policy as string | undefined,
    userConfig: values['no-user-config'] ? null : undefined,
    env: process.env,
    home: process.env.USERPROFILE ?? homedir(),
  });
  const windowsModule = '../windows/index.js';
  const { runWindowsSandboxed } = (await import(windowsModule)) as typeof import('../windows/index.js');
  const r = await runWindowsSandboxed(loaded.input, argv, { stdout: (b) => process.stdout.write(b), stderr: (b) => process.stderr.write(b) });
  return r.exitCode;
}

export async function runCommand(values: Values, argv: string[]): Promise<number> {
  if (process.platform === 'win32') return runOnWindows(values, argv);
  const sandbox = await sandboxFromFlags(values);
  for (const w of sandbox.policy.warnings) say(w);
  if (sandbox.tier === 'reduced') {
    say('running in the REDUCED tier (--allow-reduced): user namespaces are unavailable here');
    for (const l of sandbox.explain()) say(`${l.active ? '[on] ' : '[off]'} ${l.layer}: ${l.detail}`);
  } else if (values.explain) printExplain(sandbox);
  // isatty, not process.stdin.isTTY: creating process.stdin could start reading the input that
  // belongs to the sandboxed command.
  const interactive = isatty(0) && isatty(1);
  const cmd = sandbox.spawn(argv, { stdio: ['inherit', 'inherit', 'inherit'], pty: interactive });
  const forward = (sig: NodeJS.Signals, n: number) => () => cmd.signal(n);
  const handlers: [NodeJS.Signals, () => void][] = [
    ['SIGINT', forward('SIGINT', 2)],
    ['SIGTERM', forward('SIGTERM', 15)],
    ['SIGHUP', forward('SIGHUP', 1)],
  ];
  for (const [s, h] of handlers) process.on(s, h);
  let restoreTerminal = () => undefined as void;
  if (interactive) {
    process.stdin.setRawMode(true);
    const onResize = () => cmd.resize(process.stdout.rows, process.stdout.columns);
    process.stdout.on('resize', onResize);
    restoreTerminal = () => {
      process.stdout.off('resize', onResize);
      process.stdin.setRawMode(false);
      process.stdin.pause();
    };
  }
  trace('waiting for the command');
  try {
    const r = await cmd.result;
    return summarize(r, argv[0]!, !!values.quiet, sandbox.policy.limits.timeoutMs);
  } finally {
    restoreTerminal();
    for (const [s, h] of handlers) process.off(s, h);
  }
}

export async function runShell(values: Values): Promise<number> {
  const shell = process.env.SHELL || '/bin/bash';
  return runCommand(values, [shell, '-i']);
}

export async function showPolicy(values: Values): Promise<number> {
  const sandbox = await sandboxFromFlags(values);
  const p = sandbox.policy;
  const home = process.env.HOME ?? homedir();
  // Never print environment values: they are the host's and may be secret.
  const shown = {
    ...p,
    env: { names: Object.keys(p.env.vars).sort(), removed: p.env.removed },
    layers: sandbox.explain(),
    home: displayPath(home, home),
  };
  process.stdout.write(JSON.stringify(shown, null, 2) + '\n');
  return 0;
}
