// The commands on a real Windows machine: setup, uninstall, and running one sandboxed command.
// Loaded only on win32 (dynamic import from cli.ts and from the library entry point).

import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { PolicyInput } from '../../policy/types.js';
import type { WindowsCliArgs } from '../cli.js';
import { gatherSetupFacts } from '../facts.js';
import { formatCommandPlan, formatSetupPlan, namer } from '../format.js';
import { DEFAULT_SETUP_SETTINGS, assignSlot, compileCommandPlan, compileSetupPlan, type CommandPlan } from '../plan.js';
import { cordonDirs, resolveWindowsPolicy } from '../resolve.js';
import type { InstallState } from '../types.js';
import { runViaRunner } from './broker.js';
import { JsonlManifestStore } from './manifest.js';
import { prepareCommand } from './prepare.js';
import { runChild } from './runner.js';
import { generatePassword, runSetup } from './setup.js';
import { describeUndo, undoAll } from './uninstall.js';
import { Win32BrokerApi, Win32RunnerApi, Win32System, realHost } from './win32.js';

const win = path.win32;

interface Io {
  stdout: { write(chunk: string): unknown };
  stderr: { write(chunk: string): unknown };
}

function env(): Record<string, string> {
  return Object.fromEntries(Object.entries(process.env).filter((e): e is [string, string] => typeof e[1] === 'string'));
}

function machineDir(): string {
  return win.join(process.env.ProgramData ?? 'C:\\ProgramData', 'cordon');
}

function fixedDrives(): string[] {
  return 'CDEFGHIJKLMNOPQRSTUVWXYZ'.split('').filter((d) => existsSync(`${d}:\\`));
}

export async function runOnWindows(args: WindowsCliArgs, io: Io): Promise<number> {
  const sys = await Win32System.load();
  const me = await sys.currentUser();
  if (!args.dryRun && !me.elevated) {
    io.stderr.write(`cordon ${args.command}: needs an elevated prompt (Run as administrator); nothing was changed\n`);
    return 2;
  }
  const host = realHost(env(), process.cwd(), os.totalmem());
  if (args.command === 'uninstall') {
    const stores = [new JsonlManifestStore(win.join(cordonDirs(host).state, 'manifest.json')), new JsonlManifestStore(win.join(machineDir(), 'manifest.json'))];
    let failures = 0;
    for (const store of stores) {
      const failed = await undoAll(sys, store, { dryRun: args.dryRun, onUndo: (c) => io.stdout.write(`${args.dryRun ? 'would ' : ''}${describeUndo(c)}\n`) });
      for (const f of failed) io.stderr.write(`could not ${describeUndo(f.change)}: ${f.error}\n`);
      failures += failed.length;
    }
    if (!args.dryRun && failures === 0) await sys.removeTree(machineDir());
    return failures === 0 ? 0 : 1;
  }
  const settings = { ...DEFAULT_SETUP_SETTINGS, ...(args.slots ? { slotCount: args.slots } : {}), ...(args.proxyPorts ? { proxyPorts: args.proxyPorts } : {}) };
  const facts = await gatherSetupFacts(sys, host, { drives: fixedDrives() });
  if (facts.auditTruncated) io.stderr.write('warning: the scan for broad-writable directories hit its budget; some were not checked\n');
  const plan = compileSetupPlan(settings, facts);
  if (args.dryRun) {
    io.stdout.write(formatSetupPlan(plan, namer({ '@group': `${settings.names.group} SID`, '@offline': `${settings.names.offlineUser} SID`, '@online': `${settings.names.onlineUser} SID`, '@realUser': me.name, '@fence': 'network fence SID' })));
    return 0;
  }
  const installId = readInstallState()?.installId ?? randomBytes(16).toString('hex');
  const state = await runSetup(plan, sys, new JsonlManifestStore(plan.manifestPath), {
    realUserSid: me.sid, installId, now: () => new Date().toISOString(), randomPassword: () => generatePassword((n) => randomBytes(n)),
    onStep: (step) => io.stdout.write(`${step.id}\n`),
  });
  io.stdout.write(`cordon is set up for ${me.name}: ${state.names.offlineUser}, ${state.names.onlineUser}, ${state.slotSids.length} workspace slots\n`);
  return 0;
}

export function readInstallState(): InstallState | null {
  const file = win.join(machineDir(), 'install.json');
  return existsSync(file) ? (JSON.parse(readFileSync(file, 'utf8')) as InstallState) : null;
}

/** Workspace slots of this user: a small JSON table, replaced atomically. */
function slotTable(stateDir: string): { table: Record<string, number>; save(t: Record<string, number>): void } {
  const file = win.join(stateDir, 'slots.json');
  const table = existsSync(file) ? (JSON.parse(readFileSync(file, 'utf8')) as Record<string, number>) : {};
  return {
    table,
    save(t) {
      mkdirSync(stateDir, { recursive: true });
      writeFileSync(`${file}.tmp`, JSON.stringify(t, null, 2));
      renameSync(`${file}.tmp`, file);
    },
  };
}

export interface WindowsRunOptions {
  /** Where cordon's proxy listens for this command (network.mode allow-list). */
  proxyPort?: number;
  /** Print the plan and do nothing. */
  dryRun?: boolean;
  stdin?: AsyncIterable<Buffer>;
}

/** `cordon run` on Windows: plan, prepare the ACLs, and run through the runner (or directly in the reduced tier). */
export async function runSandboxedOnWindows(input: PolicyInput, argv: string[], io: { stdout(b: Buffer): void; stderr(b: Buffer): void }, options: WindowsRunOptions = {}): Promise<{ exitCode: number; timedOut: boolean; plan: CommandPlan }> {
  const sys = await Win32System.load();
  const me = await sys.currentUser();
  const host = realHost(env(), process.cwd(), os.totalmem());
  const policy = resolveWindowsPolicy(input, host);
  const install = readInstallState();
  const dirs = cordonDirs(host);
  const nonce = randomBytes(16).toString('hex');
  let plan: CommandPlan;
  if (install) {
    const slots = slotTable(dirs.state);
    const slot = assignSlot(slots.table, policy.workspace, install.slotSids.length);
    slots.save(slot.table);
    plan = compileCommandPlan(policy, {
      tier: 'elevated', command: argv, nonce, install, slot: { index: slot.index, sharedWith: slot.sharedWith }, caller: me,
      ...(options.proxyPort !== undefined ? { proxyPort: options.proxyPort } : {}), processors: os.cpus().length,
    });
  } else {
    plan = compileCommandPlan(policy, {
      tier: 'reduced', command: argv, nonce, installId: userInstallId(dirs.state), caller: me,
      ...(options.proxyPort !== undefined ? { proxyPort: options.proxyPort } : {}), processors: os.cpus().length,
    });
    for (const gap of plan.notProtected) io.stderr(Buffer.from(`cordon: reduced tier (no \`cordon setup\`): ${gap}\n`));
  }
  if (options.dryRun) {
    io.stdout(Buffer.from(formatCommandPlan(plan, namer({}))));
    return { exitCode: 0, timedOut: false, plan };
  }
  await prepareCommand(plan, sys, new JsonlManifestStore(win.join(dirs.state, 'manifest.json')));
  if (plan.tier === 'reduced') {
    const runner = await Win32RunnerApi.load();
    let timedOut = false;
    const code = await runChild({
      type: 'spawn', version: 1, token: plan.token, job: plan.job, desktop: { name: plan.desktop.name, sddl: plan.desktop.sddl }, process: plan.process,
      timeoutMs: plan.timeoutMs, runnerProcessSddl: `D:P(A;;0x1fffff;;;SY)(A;;0x1fffff;;;${me.sid})`,
    }, runner, (m) => {
      if (m.type === 'stdout') io.stdout(Buffer.from(m.data, 'base64'));
      else if (m.type === 'stderr') io.stderr(Buffer.from(m.data, 'base64'));
      else if (m.type === 'exit') timedOut = m.timedOut;
      else if (m.type === 'error') io.stderr(Buffer.from(`cordon: ${m.message}\n`));
    }, { terminated: new Promise(() => undefined), onStdin: () => undefined });
    return { exitCode: code, timedOut, plan };
  }
  const blob = await sys.readFile(install!.credentialPath);
  if (!blob) throw new Error(`${install!.credentialPath} is missing; re-run \`cordon setup\` as an administrator`);
  const passwords = JSON.parse((await sys.unprotectData(blob)).toString()) as Record<string, string>;
  const broker = await Win32BrokerApi.load(runnerScript());
  await broker.grantWindowStation(plan.desktop.windowStationGrant);
  const result = await runViaRunner(plan, { name: plan.identity.userName, password: passwords[plan.identity.userName]! }, broker, { stdout: io.stdout, stderr: io.stderr }, {
    acceptTimeoutMs: 15000, graceMs: 5000, callerSid: me.sid, ...(options.stdin ? { stdin: options.stdin } : {}),
  });
  return { ...result, plan };
}

/**
 * The runner's script. This module may run from dist/src/windows/enforcer/ or from the bundled CLI
 * in dist/src/cli/, so both relative spellings are tried.
 */
function runnerScript(): string {
  for (const rel of ['./runner-main.js', '../windows/enforcer/runner-main.js']) {
    const candidate = fileURLToPath(new URL(rel, import.meta.url));
    if (existsSync(candidate)) return candidate;
  }
  throw new Error('cannot find runner-main.js next to cordon; reinstall cordon');
}

/** The reduced tier's installation id: per user, random, kept with cordon's state. */
function userInstallId(stateDir: string): string {
  const file = win.join(stateDir, 'install-id');
  if (existsSync(file)) return readFileSync(file, 'utf8').trim();
  const id = randomBytes(16).toString('hex');
  mkdirSync(stateDir, { recursive: true });
  writeFileSync(file, id);
  return id;
}
