#!/usr/bin/env node
// cordon's command line. It parses and prints; everything else lives in the library. Modules are
// imported lazily so that `cordon run -- true` pays only for what it uses.
import { parseArgs } from 'node:util';
import { POLICY_FLAGS } from './flags.js';

const USAGE = `usage: cordon <command> [flags]

  cordon run [flags] [--] CMD [ARGS…]   run a command in the sandbox (default policy: workspace = current directory)
  cordon shell [flags]                  an interactive shell in one long-lived sandbox
  cordon policy show [flags]            print the effective policy as JSON
  cordon doctor                         which layers this machine can enforce, and how to fix what is missing
  cordon setup|uninstall [--dry-run] [--platform windows]   Windows sandbox users and rules (see docs/windows.md)

policy flags (run, shell, policy show):
  --mode read-only|workspace-write|full-access   default workspace-write
  --workspace DIR            the writable workspace (default: current directory)
  --write PATH               another writable root (repeatable)
  --protect PATH             keep PATH read-only inside writable roots (repeatable)
  --deny-read PATH           make PATH unreadable (repeatable); --allow-read PATH re-opens one
  --network off|allow-list|full   default off; --allow-domain D / --deny-domain D (repeatable)
  --transparent              let tools that ignore proxy settings reach allowed domains
  --socket PATH              expose one host unix socket, e.g. --socket "$SSH_AUTH_SOCK"
  --env-inherit all|core|none, --env-keep PATTERN, --env-scrub PATTERN, --env-set NAME=VALUE
  --timeout 30s, --memory 2G, --pids 512, --cpu 1.5
  --policy FILE              a policy file (JSON); --no-user-config ignores ~/.config/cordon/config.json
  --allow-reduced            accept a weaker tier when a layer is unavailable (the active layers are printed)
run flags:
  --explain                  print the layers and the mount plan before running
  --quiet                    no summary of denials on stderr
  --no-report-writes         do not trace write calls to report refused ones (faster for write-heavy commands)
exit status: the command's own; 128+N for signal N; 124 timeout; 126/127 not executable/not found; 2 cordon usage or policy error`;

const RUN_FLAGS = { ...POLICY_FLAGS, explain: { type: 'boolean' }, quiet: { type: 'boolean' }, 'no-report-writes': { type: 'boolean' }, help: { type: 'boolean', short: 'h' } } as const;

class UsageError extends Error {}

/** Splits `[flags] [--] CMD ARGS…`: the command starts at `--` or at the first non-flag word. */
function splitCommand(args: string[]): { flags: string[]; command: string[] } {
  const flags: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    if (a === '--') return { flags, command: args.slice(i + 1) };
    if (!a.startsWith('-') || a === '-') return { flags, command: args.slice(i) };
    flags.push(a);
    const name = a.replace(/^--?/, '').split('=')[0]!;
    const spec = (RUN_FLAGS as Record<string, { type: string }>)[name];
    if (spec?.type === 'string' && !a.includes('=') && i + 1 < args.length) flags.push(args[++i]!);
  }
  return { flags, command: [] };
}

function parseFlags(flagArgs: string[], options: Record<string, unknown>) {
  try {
    return parseArgs({ args: flagArgs, options: options as never, strict: true, allowPositionals: false }).values as Record<string, unknown>;
  } catch (e) {
    const m = /Unknown option '([^']+)'/.exec((e as Error).message);
    throw new UsageError(m ? `unknown flag ${m[1]}; see \`cordon --help\`` : (e as Error).message.split('\n')[0]!.replace(/\.$/, '') + '; see `cordon --help`');
  }
}

async function main(argv: string[]): Promise<number> {
  if (process.env.CORDON_TRACE) process.stderr.write(`cordon-trace ${performance.now().toFixed(2)} cli started\n`);
  const [command, ...rest] = argv;
  switch (command) {
    case 'run': {
      const { flags, command: cmd } = splitCommand(rest);
      const values = parseFlags(flags, RUN_FLAGS);
      if (values.help) return print(USAGE);
      if (!cmd.length) throw new UsageError('no command given; usage: cordon run [flags] -- CMD [ARGS…]');
      const { runCommand } = await import('./run.js');
      return runCommand(values, cmd);
    }
    case 'shell': {
      const values = parseFlags(rest, RUN_FLAGS);
      const { runShell } = await import('./run.js');
      return runShell(values);
    }
    case 'policy': {
      if (rest[0] !== 'show') throw new UsageError('usage: cordon policy show [flags]');
      const values = parseFlags(rest.slice(1), POLICY_FLAGS);
      const { showPolicy } = await import('./run.js');
      return showPolicy(values);
    }
    case 'doctor': {
      const values = parseFlags(rest, { json: { type: 'boolean' } });
      const { runDoctor } = await import('./doctor.js');
      return runDoctor(!!values.json);
    }
    case 'setup':
    case 'uninstall': {
      const windowsCli = '../windows/cli.js'; // built separately; absent in trimmed builds
      const mod = (await import(windowsCli).catch(() => null)) as { runWindowsCommand?: (a: string[], io: { stdout: NodeJS.WritableStream; stderr: NodeJS.WritableStream }) => Promise<number> } | null;
      if (!mod?.runWindowsCommand) throw new UsageError(`cordon ${command} is not available in this build`);
      return mod.runWindowsCommand([command, ...rest], { stdout: process.stdout, stderr: process.stderr });
    }
    case '--version':
    case 'version': {
      const { readFileSync } = await import('node:fs');
      const pkg = JSON.parse(readFileSync(new URL('../../../package.json', import.meta.url), 'utf8')) as { version: string };
      return print(pkg.version);
    }
    case undefined:
    case 'help':
    case '--help':
    case '-h':
      return print(USAGE);
    default:
      throw new UsageError(`unknown command ${JSON.stringify(command)}; commands: run, shell, policy show, doctor, setup, uninstall`);
  }
}

function print(text: string): number {
  process.stdout.write(text + '\n');
  return 0;
}

main(process.argv.slice(2)).then(
  // Exit at once: stdout and stderr are synchronous on Linux, and waiting for the event loop to
  // drain only adds to every command's cost.
  (code) => process.exit(code),
  (e: unknown) => {
    // Errors the user can fix are one line, exit 2, no stack trace.
    const err = e as Error & { exitCode?: number };
    const known = e instanceof UsageError || err?.name === 'PolicyError' || err?.name === 'LayerUnavailableError';
    const msg = (err?.message ?? String(e)).replace(/^cordon: /, '');
    process.stderr.write(`cordon: ${known ? msg : `internal error: ${msg}`}\n`);
    if (!known && process.env.CORDON_DEBUG) process.stderr.write(`${err?.stack}\n`);
    process.exit(known ? 2 : 70);
  },
);
