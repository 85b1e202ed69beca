// `cordon setup` and `cordon uninstall` for Windows. The CLI parses and prints; the work is done by
// the planners and the enforcer. On a non-Windows machine only `--dry-run --platform windows`
// does anything: it plans against the model's sample machine and prints the plan.

import { randomBytes } from 'node:crypto';
import path from 'node:path';
import { readPolicyFile } from '../policy/load.js';
import type { PolicyInput } from '../policy/types.js';
import { MemoryManifestStore } from './enforcer/manifest.js';
import { generatePassword, runSetup } from './enforcer/setup.js';
import { describeUndo, undoAll } from './enforcer/uninstall.js';
import { gatherSetupFacts } from './facts.js';
import { formatCommandPlan, formatSetupPlan, namer } from './format.js';
import { modelHost } from './model/host.js';
import { sampleEnv, sampleMachine } from './model/sample.js';
import { ModelWindowsSystem } from './model/system.js';
import {
  DEFAULT_SETUP_SETTINGS, PRINCIPAL, type WindowsSetupSettings, assignSlot, compileCommandPlan, compileSetupPlan, fenceSid,
} from './plan.js';
import { resolveWindowsPolicy } from './resolve.js';
import type { InstallState } from './types.js';

export interface CliIo {
  stdout: { write(chunk: string): unknown };
  stderr: { write(chunk: string): unknown };
}

class UsageError extends Error {}

interface Parsed {
  command: 'setup' | 'uninstall';
  dryRun: boolean;
  platform: string;
  policy?: string;
  slots?: number;
  proxyPorts?: { first: number; last: number };
}

const USAGE = 'usage: cordon setup [--dry-run] [--platform windows] [--policy FILE] [--slots N] [--proxy-ports FIRST-LAST]\n       cordon uninstall [--dry-run] [--platform windows]\n';

function parse(argv: string[]): Parsed {
  const [command, ...rest] = argv;
  if (command !== 'setup' && command !== 'uninstall') throw new UsageError(`unknown command '${command ?? ''}'; expected setup or uninstall`);
  const out: Parsed = { command, dryRun: false, platform: process.platform === 'win32' ? 'windows' : process.platform };
  for (let i = 0; i < rest.length; i += 1) {
    const arg = rest[i]!;
    const value = (name: string) => {
      const v = rest[++i];
      if (v === undefined || v.startsWith('--')) throw new UsageError(`${name} needs a value`);
      return v;
    };
    if (arg === '--dry-run') out.dryRun = true;
    else if (arg === '--platform') out.platform = value('--platform');
    else if (arg.startsWith('--platform=')) out.platform = arg.slice('--platform='.length);
    else if (arg === '--policy' && command === 'setup') out.policy = value('--policy');
    else if (arg === '--slots' && command === 'setup') {
      const n = Number(value('--slots'));
      if (!Number.isInteger(n) || n < 1 || n > 64) throw new UsageError('--slots: use a whole number from 1 to 64');
      out.slots = n;
    } else if (arg === '--proxy-ports' && command === 'setup') {
      const m = /^(\d+)-(\d+)$/.exec(value('--proxy-ports'));
      if (!m) throw new UsageError('--proxy-ports: use FIRST-LAST, e.g. 47800-47809');
      out.proxyPorts = { first: Number(m[1]), last: Number(m[2]) };
    } else throw new UsageError(`unknown option ${arg} for cordon ${command}`);
  }
  return out;
}

/** Symbolic names for the SIDs a dry run cannot know yet. */
const PLACEHOLDER_STATE = (settings: WindowsSetupSettings): InstallState => ({
  version: 1, installId: 'dry-run', names: settings.names, groupSid: PRINCIPAL.group, offlineUserSid: PRINCIPAL.offline,
  onlineUserSid: PRINCIPAL.online, slotSids: Array.from({ length: settings.slotCount }, (_, i) => PRINCIPAL.slot(i)),
  proxyPorts: settings.proxyPorts, credentialPath: 'C:\\ProgramData\\cordon\\credentials.bin', createdAt: 'dry-run',
});

function names(settings: WindowsSetupSettings, realUser: string): Record<string, string> {
  const out: Record<string, string> = {
    [PRINCIPAL.group]: `${settings.names.group} SID`, [PRINCIPAL.offline]: `${settings.names.offlineUser} SID`,
    [PRINCIPAL.online]: `${settings.names.onlineUser} SID`, [PRINCIPAL.realUser]: `${realUser} SID`,
    [PRINCIPAL.fence]: 'network fence SID', [fenceSid('dry-run')]: 'network fence SID',
  };
  for (let i = 0; i < settings.slotCount; i += 1) out[PRINCIPAL.slot(i)] = `${settings.names.slotPrefix}${i} SID`;
  return out;
}

/** Dry run off Windows: plan against the model's sample developer machine. */
async function simulatedSetupDryRun(parsed: Parsed, io: CliIo): Promise<number> {
  const settings: WindowsSetupSettings = {
    ...DEFAULT_SETUP_SETTINGS,
    ...(parsed.slots ? { slotCount: parsed.slots } : {}),
    ...(parsed.proxyPorts ? { proxyPorts: parsed.proxyPorts } : {}),
  };
  const layout = sampleMachine();
  const env = sampleEnv(layout.home);
  let input: PolicyInput = { network: { mode: 'allow-list', allow: ['registry.npmjs.org'] } };
  if (parsed.policy) {
    input = readPolicyFile(parsed.policy, false) ?? {};
    // The policy's directories are made on the simulated machine so that its plan can be shown.
    for (const p of [input.workspace, ...(input.filesystem?.write ?? [])]) {
      if (p && /^[A-Za-z]:[\\/]/.test(p)) layout.machine.fs.adminMkdirs(path.win32.normalize(p), layout.realUser.sid);
    }
  }
  const admin = new ModelWindowsSystem(layout.machine, layout.machine.logon(layout.realUser.name, null, { elevated: true }));
  const host = modelHost(layout.machine, env, layout.workspace);
  const facts = await gatherSetupFacts(admin, host, { drives: ['C', 'D'] });
  const plan = compileSetupPlan(settings, facts);
  const name = namer({ ...names(settings, facts.realUserName), [facts.realUserSid]: `${facts.realUserName} SID` });
  io.stdout.write(`cordon setup --dry-run --platform windows: nothing is changed. This machine is not Windows, so the plan is computed\n`);
  io.stdout.write(`for cordon's simulated sample machine (user ${facts.realUserName}, profile ${facts.userProfile}); SIDs that Windows assigns at\n`);
  io.stdout.write(`setup are shown as <name SID>. The Windows backend is verified against a model of Windows security, not yet on Windows.\n\n`);
  io.stdout.write('== Setup (elevated, once) ==\n');
  io.stdout.write(formatSetupPlan(plan, name));
  const policy = resolveWindowsPolicy(input, host, { sources: [parsed.policy ?? 'sample policy'] });
  const state = PLACEHOLDER_STATE(settings);
  const slot = assignSlot({}, policy.workspace, settings.slotCount);
  const command = compileCommandPlan(policy, {
    tier: 'elevated', command: ['cmd.exe', '/c', 'npm test'], nonce: '0'.repeat(32), install: state,
    slot: { index: slot.index, sharedWith: slot.sharedWith }, caller: { name: facts.realUserName, sid: facts.realUserSid },
    ...(policy.network.mode === 'allow-list' ? { proxyPort: settings.proxyPorts.first } : {}), processors: 8,
  });
  io.stdout.write(`\n== Per command (unelevated), e.g. \`cordon run -- npm test\` in ${policy.workspace} ==\n`);
  io.stdout.write(formatCommandPlan(command, namer({ ...names(settings, facts.realUserName), [facts.realUserSid]: `${facts.realUserName} SID`, [command.capabilitySid]: 'workspace capability SID' })));
  return 0;
}

/** Uninstall dry run off Windows: what uninstall would undo after a setup and one command. */
async function simulatedUninstallDryRun(io: CliIo): Promise<number> {
  const layout = sampleMachine();
  const admin = new ModelWindowsSystem(layout.machine, layout.machine.logon(layout.realUser.name, null, { elevated: true }));
  const host = modelHost(layout.machine, sampleEnv(layout.home), layout.workspace);
  const plan = compileSetupPlan(DEFAULT_SETUP_SETTINGS, await gatherSetupFacts(admin, host, { drives: ['C', 'D'] }));
  const store = new MemoryManifestStore('C:\\ProgramData\\cordon\\manifest.json');
  await runSetup(plan, admin, store, {
    realUserSid: layout.realUser.sid, installId: 'dry-run', now: () => new Date().toISOString(), randomPassword: () => generatePassword((n) => randomBytes(n)),
  });
  io.stdout.write('cordon uninstall --dry-run --platform windows: nothing is changed. On this simulated machine, after setup, uninstall\n');
  io.stdout.write('would undo, newest first (it also replays the per-user manifest of ACEs added per command):\n');
  await undoAll(admin, store, { dryRun: true, onUndo: (c) => io.stdout.write(`  ${describeUndo(c)}\n`) });
  io.stdout.write(`  remove ${plan.programDataDir}\n`);
  return 0;
}

export async function runWindowsCommand(argv: string[], io: CliIo): Promise<number> {
  let parsed: Parsed;
  try {
    parsed = parse(argv);
  } catch (e) {
    if (e instanceof UsageError) {
      io.stderr.write(`cordon: ${e.message}\n${USAGE}`);
      return 2;
    }
    throw e;
  }
  if (parsed.platform !== 'windows') {
    io.stderr.write(`cordon ${parsed.command}: only Windows needs it (this is ${parsed.platform}); use --dry-run --platform windows to print the Windows plan\n`);
    return 2;
  }
  try {
    if (process.platform !== 'win32') {
      if (!parsed.dryRun) {
        io.stderr.write(`cordon ${parsed.command}: this machine runs ${process.platform}, not Windows; add --dry-run to print the Windows plan\n`);
        return 2;
      }
      return parsed.command === 'setup' ? await simulatedSetupDryRun(parsed, io) : await simulatedUninstallDryRun(io);
    }
    const { runOnWindows } = await import('./enforcer/windows-commands.js');
    return await runOnWindows(parsed, io);
  } catch (e) {
    io.stderr.write(`cordon ${parsed.command}: ${e instanceof Error ? e.message : String(e)}\n`);
    return 1;
  }
}

export type { Parsed as WindowsCliArgs };
