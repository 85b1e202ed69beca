// The pure planners: setup order, per-command ACEs and token, slots, SIDs, and the user errors.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { ResolvedPolicy } from '../../src/policy/types.js';
import {
  DEFAULT_SETUP_SETTINGS, type SetupFacts, WindowsPlanError, assignSlot, capabilitySid, compileCommandPlan,
  compileSetupPlan, fenceSid,
} from '../../src/windows/plan.js';
import { PROTECT_DENY, SECRET_DENY } from '../../src/windows/rights.js';
import { SID, isSidString } from '../../src/windows/sids.js';
import type { InstallState } from '../../src/windows/types.js';

const HOME = 'C:\\Users\\dev';
const facts: SetupFacts = {
  realUserName: 'dev', realUserSid: 'S-1-5-21-1-2-3-1001', userProfile: HOME,
  profileChildren: [
    { name: '.ssh', kind: 'dir', reparse: false }, { name: 'AppData', kind: 'dir', reparse: false },
    { name: 'Documents', kind: 'dir', reparse: false }, { name: 'NTUSER.DAT', kind: 'file', reparse: false },
    { name: 'Application Data', kind: 'dir', reparse: true }, { name: '.gitconfig', kind: 'file', reparse: false },
  ],
  secrets: [{ path: `${HOME}\\.ssh`, kind: 'dir' }, { path: `${HOME}\\AppData\\Roaming\\gcloud`, kind: 'dir' }],
  broadWritableDirs: ['C:\\src'], programData: 'C:\\ProgramData', userStateDir: `${HOME}\\AppData\\Local\\cordon\\state`,
};

const install: InstallState = {
  version: 1, installId: '0123456789abcdef', names: DEFAULT_SETUP_SETTINGS.names, groupSid: 'S-1-5-21-1-2-3-2000',
  offlineUserSid: 'S-1-5-21-1-2-3-2010', onlineUserSid: 'S-1-5-21-1-2-3-2011', slotSids: ['S-1-5-21-1-2-3-2001', 'S-1-5-21-1-2-3-2002', 'S-1-5-21-1-2-3-2003'],
  proxyPorts: { first: 47800, last: 47809 }, credentialPath: 'C:\\ProgramData\\cordon\\credentials.bin', createdAt: 'now',
};

function policy(extra: Partial<ResolvedPolicy> = {}): ResolvedPolicy {
  const ws = `${HOME}\\src\\app`;
  return {
    mode: 'workspace-write', workspace: ws, cwd: ws,
    writableRoots: [{ path: ws, reason: 'workspace' }, { path: `${HOME}\\AppData\\Local\\cordon\\scratch\\x\\tmp`, reason: 'tmp' }],
    protected: [
      { path: `${ws}\\.git\\hooks`, kind: 'dir', exists: false, reason: 'git-hooks', root: ws },
      { path: `${ws}\\.git\\config`, kind: 'file', exists: true, reason: 'git-config', root: ws },
    ],
    denyRead: [{ path: `${HOME}\\.ssh`, kind: 'dir', reason: 'secret' }],
    exposedSockets: [], network: { mode: 'allow-list', allow: ['example.com'], deny: [], transparent: false },
    env: { vars: { PATH: 'C:\\Windows', NO_PROXY: 'localhost' }, removed: [] }, limits: { timeoutMs: 60000, memoryBytes: 1 << 30, pids: 100, cpu: 2 },
    allowReduced: false, sources: ['test'], warnings: [], ...extra,
  };
}

const ctx = (extra: Record<string, unknown> = {}) => ({
  tier: 'elevated' as const, command: ['cmd', '/c', 'echo'], nonce: 'ab'.repeat(16), install, slot: { index: 1, sharedWith: [] },
  caller: { name: 'dev', sid: facts.realUserSid }, proxyPort: 47801, processors: 8, ...extra,
});

describe('setup plan', () => {
  const plan = compileSetupPlan(DEFAULT_SETUP_SETTINGS, facts);
  const ids = plan.steps.map((s) => s.id);
  const index = (pred: (s: (typeof plan.steps)[number]) => boolean) => plan.steps.findIndex(pred);

  it('fences the network broad-first, verifies it, and only then stores credentials; the install state is last', () => {
    const broad = index((s) => s.kind === 'firewall-rule' && s.phase === 'broad');
    const narrow = plan.steps.flatMap((s, i) => (s.kind === 'firewall-rule' && s.phase === 'narrow' ? [i] : []));
    const removal = index((s) => s.kind === 'remove-firewall-rule');
    const verify = index((s) => s.kind === 'verify-network-fence');
    const credentials = index((s) => s.kind === 'store-credentials');
    assert.ok(broad < Math.min(...narrow) && Math.max(...narrow) < removal && removal < verify && verify < credentials);
    assert.equal(plan.steps.at(-1)!.kind, 'write-install-state');
    assert.equal(new Set(ids).size, ids.length, 'step ids are unique');
  });

  it('grants reads on profile entries except secrets, hives and legacy junctions; denies secrets and broad-writable dirs', () => {
    const reads = plan.steps.flatMap((s) => (s.kind === 'add-aces' && s.reason === 'read grant' ? [s.path] : []));
    assert.deepEqual(reads, [`${HOME}\\AppData`, `${HOME}\\Documents`, `${HOME}\\.gitconfig`]);
    const secret = plan.steps.find((s) => s.kind === 'add-aces' && s.path === `${HOME}\\.ssh`);
    assert.ok(secret && secret.kind === 'add-aces' && secret.aces[0]!.type === 'deny' && secret.aces[0]!.mask === SECRET_DENY && secret.aces[0]!.sid === '@group');
    assert.ok(plan.steps.some((s) => s.kind === 'add-aces' && s.path === 'C:\\src' && s.aces[0]!.type === 'deny'));
    const root = plan.steps.find((s) => s.kind === 'add-aces' && s.path === HOME);
    assert.ok(root && root.kind === 'add-aces' && root.aces[0]!.flags === 0, 'the profile root grant is not inheritable');
  });

  it('denies the sandbox group the credential store, and puts both users in Users (by SID), the group and every slot', () => {
    const store = plan.steps.find((s) => s.kind === 'store-credentials');
    assert.ok(store && store.kind === 'store-credentials' && store.sddl.startsWith('O:BAD:P(D;;FA;;;@group)'));
    const members = plan.steps.filter((s) => s.kind === 'add-member');
    assert.equal(members.length, 2 * (2 + DEFAULT_SETUP_SETTINGS.slotCount));
    assert.ok(members.some((s) => s.kind === 'add-member' && s.groupSid === SID.Users));
  });

  it('refuses bad settings with one-line messages', () => {
    assert.throws(() => compileSetupPlan({ ...DEFAULT_SETUP_SETTINGS, proxyPorts: { first: 80, last: 90 } }, facts), /proxy ports 80-90: use an unprivileged range/);
    assert.throws(() => compileSetupPlan({ ...DEFAULT_SETUP_SETTINGS, slotCount: 0 }, facts), /workspace slots 0: use 1 to 64/);
    assert.throws(() => compileSetupPlan({ ...DEFAULT_SETUP_SETTINGS, names: { ...DEFAULT_SETUP_SETTINGS.names, group: 'bad name!' } }, facts), /account name 'bad name!'/);
  });
});

describe('command plan (elevated)', () => {
  const plan = compileCommandPlan(policy(), ctx());

  it('is deterministic given its inputs', () => {
    assert.deepEqual(compileCommandPlan(policy(), ctx()), plan);
  });

  it('grants the slot group and the capability SID on writable roots, with OWNER RIGHTS and no DELETE on the root itself', () => {
    const root = plan.aclSteps.find((s) => s.kind === 'add-aces' && s.path === plan.workspace);
    assert.ok(root && root.kind === 'add-aces');
    const sids = root.aces.map((a) => `${a.type}:${a.sid}:${a.mask.toString(16)}:${a.flags}`);
    assert.ok(sids.includes(`allow:${install.slotSids[1]}:1301bf:3`));
    assert.ok(sids.includes(`allow:${plan.capabilitySid}:1301bf:3`));
    assert.ok(sids.includes(`allow:${SID.OwnerRights}:20000:3`));
    assert.ok(sids.includes(`deny:${install.groupSid}:10040:0`), 'root: no DELETE, no delete-child for protected children');
  });

  it('denies protected paths to the group and the capability SID, and protects their ancestors and parents', () => {
    const config = plan.aclSteps.find((s) => s.kind === 'add-aces' && s.path.endsWith('.git\\config'));
    assert.ok(config && config.kind === 'add-aces');
    assert.deepEqual(config.aces.map((a) => [a.type, a.sid, a.mask, a.flags]), [['deny', install.groupSid, PROTECT_DENY, 0], ['deny', plan.capabilitySid, PROTECT_DENY, 0]]);
    const gitDir = plan.aclSteps.find((s) => s.kind === 'add-aces' && s.path.endsWith('\\.git'));
    assert.ok(gitDir && gitDir.kind === 'add-aces' && gitDir.aces.every((a) => a.mask === 0x10040));
    assert.ok(plan.aclSteps.some((s) => s.kind === 'ensure-dir' && s.path.endsWith('.git\\hooks')), 'a missing hooks dir is materialised');
    const paths = plan.aclSteps.filter((s) => s.kind === 'add-aces').map((s) => s.path);
    assert.equal(new Set(paths).size, paths.length, 'one ACL step per path');
  });

  it('builds a write-restricted token: other slots and Administrators deny-only, logon SIDs off, restricting = capability, fence, RESTRICTED', () => {
    assert.deepEqual(plan.token.flags, ['DISABLE_MAX_PRIVILEGE', 'WRITE_RESTRICTED', 'LUA_TOKEN']);
    assert.deepEqual(plan.token.sidsToDisable, [SID.Administrators, install.slotSids[0], install.slotSids[2]]);
    assert.equal(plan.token.disableLogonSids, true);
    assert.deepEqual(plan.token.restrictingSids, [plan.capabilitySid, fenceSid(install.installId), SID.Restricted]);
    assert.ok(!plan.token.restrictingSids.includes(install.offlineUserSid), 'the user SID is not a restricting SID');
  });

  it('runs offline with proxy variables (NO_PROXY removed) unless the network is full', () => {
    assert.equal(plan.identity.kind, 'offline');
    assert.equal(plan.process.env.HTTPS_PROXY, 'http://127.0.0.1:47801');
    assert.equal(plan.process.env.NO_PROXY, undefined);
    const online = compileCommandPlan(policy({ network: { mode: 'full', allow: [], deny: [], transparent: false } }), ctx());
    assert.equal(online.identity.kind, 'online');
    assert.equal(online.network.enforced, false);
  });

  it('sets job limits from the policy and fails closed on the desktop', () => {
    assert.equal(plan.job.killOnJobClose, true);
    assert.equal(plan.job.breakawayAllowed, false);
    assert.equal(plan.job.activeProcessLimit, 100);
    assert.equal(plan.job.cpuRate, 2500);
    assert.equal(plan.desktop.failClosed, true);
    assert.match(plan.pipe!.sddl, /^D:P\(A;;GA;;;S-1-5-21-1-2-3-2010\)\(A;;GA;;;S-1-5-21-1-2-3-1001\)$/);
  });

  it('refuses what it cannot do, naming the field and the fix', () => {
    assert.throws(() => compileCommandPlan(policy({ mode: 'full-access' }), ctx()), /mode full-access: cordon has no unsandboxed mode on Windows/);
    assert.throws(() => compileCommandPlan(policy(), ctx({ proxyPort: 9999 })), /proxy port 9999 is outside the range 47800-47809/);
    assert.throws(() => compileCommandPlan(policy(), ctx({ command: [] })), /command: nothing to run/);
    assert.throws(() => compileCommandPlan(policy(), ctx({ tier: 'reduced', install: undefined, slot: undefined, installId: 'x' })), /not set up: run `cordon setup`.*allowReduced/);
    assert.throws(() => compileCommandPlan(policy(), ctx({ nonce: 'xyz' })), WindowsPlanError);
  });
});

describe('command plan (reduced tier)', () => {
  const plan = compileCommandPlan(policy({ allowReduced: true }), ctx({ tier: 'reduced', install: undefined, slot: undefined, installId: 'fedcba9876543210' }));
  it("uses the caller's own token, says what it does not protect, and has no runner pipe", () => {
    assert.equal(plan.identity.kind, 'caller');
    assert.equal(plan.token.base, 'caller-self');
    assert.equal(plan.pipe, null);
    assert.equal(plan.network.enforced, false);
    assert.equal(plan.notProtected.length, 5);
    assert.ok(plan.notProtected.some((g) => /network: not enforced/.test(g)));
  });
});

describe('slots and SIDs', () => {
  it('a workspace keeps its slot; new ones take the least-used slot and report sharing', () => {
    let table: Record<string, number> = {};
    const take = (ws: string) => {
      const a = assignSlot(table, ws, 2);
      table = a.table;
      return a;
    };
    assert.equal(take('C:\\a').index, 0);
    assert.equal(take('C:\\b').index, 1);
    const c = take('C:\\c');
    assert.equal(c.index, 0);
    assert.deepEqual(c.sharedWith, ['C:\\A']);
    assert.equal(take('c:\\A\\').index, 0, 'the same directory in another spelling keeps its slot');
  });

  it('capability SIDs are valid, per workspace, per installation, and case-insensitive', () => {
    const a = capabilitySid('install-1', 'C:\\Users\\dev\\src\\app');
    assert.ok(isSidString(a));
    assert.equal(capabilitySid('install-1', 'c:\\users\\DEV\\src\\app\\'), a);
    assert.notEqual(capabilitySid('install-1', 'C:\\Users\\dev\\src\\lib'), a);
    assert.notEqual(capabilitySid('install-2', 'C:\\Users\\dev\\src\\app'), a);
  });
});
