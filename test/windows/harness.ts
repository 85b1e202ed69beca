// Builds a sandboxed command on the model machine exactly as the enforcer would on Windows
// (setup → resolve → plan → prepare → runner → child token), and runs probes with the resulting token.

import { randomBytes } from 'node:crypto';
import path from 'node:path';
import type { PolicyInput } from '../../src/policy/types.js';
import { ace } from '../../src/windows/acl.js';
import { runChild } from '../../src/windows/enforcer/runner.js';
import { spawnRequestFor } from '../../src/windows/enforcer/broker.js';
import { MemoryManifestStore } from '../../src/windows/enforcer/manifest.js';
import { prepareCommand } from '../../src/windows/enforcer/prepare.js';
import { runSetup, generatePassword } from '../../src/windows/enforcer/setup.js';
import { gatherSetupFacts } from '../../src/windows/facts.js';
import type { WriteRestrictedReading } from '../../src/windows/model/access-check.js';
import { modelHost } from '../../src/windows/model/host.js';
import type { Machine } from '../../src/windows/model/machine.js';
import { WinError } from '../../src/windows/model/ntfs.js';
import { type SampleLayout, sampleEnv, sampleMachine } from '../../src/windows/model/sample.js';
import { ModelRunnerApi, ModelWindowsSystem } from '../../src/windows/model/system.js';
import type { Token } from '../../src/windows/model/token.js';
import { type CommandPlan, DEFAULT_SETUP_SETTINGS, assignSlot, compileCommandPlan, compileSetupPlan } from '../../src/windows/plan.js';
import { FILE_ALL_ACCESS } from '../../src/windows/rights.js';
import { resolveWindowsPolicy } from '../../src/windows/resolve.js';
import type { InstallState } from '../../src/windows/types.js';
import type { Probe, ProbeStep } from './probes.js';

const win = path.win32;
export const PROXY_PORT = 47801;
export const OTHER_LOOPBACK_PORT = 8080;

export interface Installed {
  layout: SampleLayout;
  machine: Machine;
  state: InstallState;
  passwords: Map<string, string>;
  machineStore: MemoryManifestStore;
  userStore: MemoryManifestStore;
  slots: Record<string, number>;
  /** The private temporary directory of each workspace a command ran in. */
  tmps: Record<string, string>;
  adminSys: ModelWindowsSystem;
  userSys: ModelWindowsSystem;
  userToken: Token;
}

export interface InstallOptions {
  reading?: WriteRestrictedReading;
  filtersLoopback?: boolean;
  restrictingSidsInUserMatch?: boolean;
  slotCount?: number;
}

export async function install(options: InstallOptions = {}): Promise<Installed> {
  const layout = sampleMachine({
    writeRestrictedReading: options.reading ?? 'generic-write',
    firewall: { filtersLoopback: options.filtersLoopback ?? true, restrictingSidsInUserMatch: options.restrictingSidsInUserMatch ?? true },
  });
  const machine = layout.machine;
  const adminToken = machine.logon(layout.realUser.name, null, { elevated: true });
  const adminSys = new ModelWindowsSystem(machine, adminToken);
  const host = modelHost(machine, sampleEnv(layout.home), layout.workspace);
  const facts = await gatherSetupFacts(adminSys, host, { drives: ['C', 'D'] });
  const settings = { ...DEFAULT_SETUP_SETTINGS, slotCount: options.slotCount ?? DEFAULT_SETUP_SETTINGS.slotCount };
  const plan = compileSetupPlan(settings, facts);
  const machineStore = new MemoryManifestStore();
  const passwords = new Map<string, string>();
  const state = await runSetup(plan, adminSys, machineStore, {
    realUserSid: layout.realUser.sid, installId: 'a1b2c3d4e5f60718', now: () => '2026-01-01T00:00:00Z',
    randomPassword: () => generatePassword((n) => randomBytes(n)),
  });
  const userToken = machine.logon(layout.realUser.name, null, { uacFiltered: true });
  // The broker's way to the passwords: the DPAPI blob in the ACL-protected store.
  const userSys = new ModelWindowsSystem(machine, userToken);
  const blob = await userSys.readFile(state.credentialPath);
  for (const [name, password] of Object.entries(JSON.parse((await userSys.unprotectData(blob!)).toString()) as Record<string, string>)) passwords.set(name, password);
  return {
    layout, machine, state, passwords, machineStore, userStore: new MemoryManifestStore(), slots: {}, tmps: {},
    adminSys, userSys, userToken,
  };
}

export interface CommandRun {
  plan: CommandPlan;
  child: Token;
  runner: ModelRunnerApi;
  vars: Record<string, string>;
}

export type Program = (token: Token, machine: Machine) => number;

/** Runs one command through the real orchestration; `program` runs as the child. */
export async function runCommand(env: Installed, workspace: string, input: PolicyInput = {}, program: Program = () => 0, transform: (plan: CommandPlan) => CommandPlan = (p) => p): Promise<CommandRun> {
  const { machine, layout } = env;
  const host = modelHost(machine, sampleEnv(layout.home), workspace);
  const policy = resolveWindowsPolicy({ network: { mode: 'allow-list', allow: ['example.com'] }, ...input, workspace }, host);
  env.tmps[workspace] = policy.writableRoots.find((r) => r.reason === 'tmp')!.path;
  const slot = assignSlot(env.slots, policy.workspace, env.state.slotSids.length);
  env.slots = slot.table;
  const plan = transform(compileCommandPlan(policy, {
    tier: 'elevated', command: ['probe'], nonce: randomBytes(16).toString('hex'), install: env.state,
    slot: { index: slot.index, sharedWith: slot.sharedWith }, caller: { name: layout.realUser.name, sid: layout.realUser.sid },
    proxyPort: PROXY_PORT, processors: 8,
  }));
  await prepareCommand(plan, env.userSys, env.userStore);
  // CreateProcessWithLogonW: a fresh interactive logon of the sandbox user; seclogon also puts the
  // caller's logon SID in it.
  const callerLogon = env.userToken.groups.find((g) => g.logonId)!;
  const runnerToken = machine.logon(plan.identity.userName, env.passwords.get(plan.identity.userName)!, { extraGroups: [{ ...callerLogon }], loadProfile: true });
  const runner = new ModelRunnerApi(machine, runnerToken, ({ token, machine: m }) => program(token, m));
  const messages: unknown[] = [];
  const code = await runChild(spawnRequestFor(plan, layout.realUser.sid), runner, (m) => messages.push(m), { terminated: new Promise(() => undefined), onStdin: () => undefined });
  if (code !== 0) throw new Error(`runner failed: ${JSON.stringify(messages)}`);
  const child = runner.lastChildToken()!;
  const tmp = env.tmps[workspace]!;
  return { plan, child, runner, vars: { ...probeVars(env, tmp, workspace), siblingTmp: env.tmps[env.layout.sibling] ?? '' } };
}

export function probeVars(env: Installed, tmp: string, workspace: string): Record<string, string> {
  const { layout } = env;
  return {
    workspace, sibling: layout.sibling, home: layout.home, programFiles: 'C:\\Program Files', system: 'C:\\Windows',
    tmp, appData: `${layout.home}\\AppData\\Roaming`, programData: 'C:\\ProgramData', broadWritable: 'C:\\src\\other',
    cordonState: `${layout.home}\\AppData\\Local\\cordon\\state`, sandboxProfile: `C:\\Users\\${env.state.names.offlineUser}`,
  };
}

function expand(p: string, vars: Record<string, string>): string {
  const replaced = p.replace(/\{(\w+)\}/g, (m, name: string) => {
    const v = vars[name];
    if (v === undefined) throw new Error(`probe placeholder ${m} has no value`);
    return v;
  });
  return replaced.replace(/\//g, '\\');
}

export interface ProbeResult {
  outcome: 'allowed' | 'denied';
  detail: string;
}

/** Runs a probe's steps as `token`; the first refused step decides. */
export function runProbe(probe: Probe, token: Token, machine: Machine, vars: Record<string, string>): ProbeResult {
  for (const [i, step] of probe.steps.entries()) {
    try {
      runStep(step, token, machine, vars);
    } catch (e) {
      if (e instanceof WinError) return { outcome: 'denied', detail: `step ${i + 1} (${step.op}): ${e.message}` };
      throw e;
    }
  }
  return { outcome: 'allowed', detail: 'every step succeeded' };
}

function runStep(step: ProbeStep, token: Token, machine: Machine, vars: Record<string, string>): void {
  const fs = machine.fs;
  switch (step.op) {
    case 'write':
      fs.writeFile(token, expand(step.path, vars), 'probe', { append: step.append ?? false });
      return;
    case 'create':
      if (step.kind === 'dir') fs.mkdir(token, expand(step.path, vars));
      else fs.writeFile(token, expand(step.path, vars), '');
      return;
    case 'read':
      fs.readFile(token, expand(step.path, vars));
      return;
    case 'delete':
      fs.delete(token, expand(step.path, vars));
      return;
    case 'rename':
      fs.rename(token, expand(step.path, vars), expand(step.to, vars), { replace: step.replace ?? false });
      return;
    case 'set-permissions':
      fs.setDacl(token, expand(step.path, vars), [ace('allow', token.user, FILE_ALL_ACCESS)]);
      return;
    case 'link': {
      const p = expand(step.path, vars);
      const target = expand(step.target, vars);
      if (step.kind === 'dir-link') fs.createJunction(token, p, target);
      else if (step.kind === 'hardlink') fs.createHardLink(token, p, target);
      else fs.createSymlink(token, p, target, fs.stat(target)?.kind ?? 'file');
      return;
    }
    case 'connect': {
      const port = step.port === '{proxyPort}' ? PROXY_PORT : step.port === '{otherLoopbackPort}' ? OTHER_LOOPBACK_PORT : step.port;
      const verdict = machine.connect({ token, protocol: step.protocol ?? 'tcp', remoteAddress: step.host, remotePort: port });
      if (!verdict.allowed) throw new WinError('WSAEACCES', `connect ${step.host}:${port}: ${verdict.reason}`);
      return;
    }
  }
}

/** A fresh sample machine with no cordon at all, for the unsandboxed control runs. */
export function bareMachine(reading: WriteRestrictedReading = 'generic-write') {
  const layout = sampleMachine({ writeRestrictedReading: reading });
  // The sibling's sandbox-made file exists in the fixture too (owned by the user here).
  layout.machine.fs.adminWriteFile(`${layout.sibling}\\made-by-sandbox.txt`, 'x', layout.realUser.sid);
  const user = layout.machine.logon(layout.realUser.name, null, { uacFiltered: true });
  const elevated = layout.machine.logon(layout.realUser.name, null, { elevated: true });
  const vars = {
    workspace: layout.workspace, sibling: layout.sibling, home: layout.home, programFiles: 'C:\\Program Files', system: 'C:\\Windows',
    tmp: `${layout.home}\\AppData\\Local\\Temp`, appData: `${layout.home}\\AppData\\Roaming`, programData: 'C:\\ProgramData',
    broadWritable: 'C:\\src\\other', cordonState: `${layout.home}\\AppData\\Local\\cordon\\state`,
    sandboxProfile: 'C:\\Users\\cordon-offline', siblingTmp: `${layout.home}\\AppData\\Local\\cordon\\scratch\\sibling\\tmp`,
  };
  layout.machine.fs.adminMkdirs(vars.tmp, layout.realUser.sid);
  layout.machine.fs.adminMkdirs(vars.siblingTmp, layout.realUser.sid);
  layout.machine.fs.adminWriteFile(`${vars.siblingTmp}\\build.log`, 'log', layout.realUser.sid);
  // The sandbox account's profile, as its first logon leaves it (for the control run).
  const offline = layout.machine.addUser('cordon-offline', 'x');
  layout.machine.fs.adminMkdirs(vars.sandboxProfile, offline.sid, {
    aces: [{ type: 'allow', sid: 'S-1-5-18', mask: 0x1f01ff, flags: 3 }, { type: 'allow', sid: 'S-1-5-32-544', mask: 0x1f01ff, flags: 3 }, { type: 'allow', sid: offline.sid, mask: 0x1f01ff, flags: 3 }],
    protected: true,
  });
  layout.machine.fs.adminMkdirs(`${vars.sandboxProfile}\\Documents\\WindowsPowerShell`, offline.sid);
  return { layout, user, elevated, vars };
}

export { win };
