// Each defence of the plan, removed one at a time, must make a named probe fail: otherwise the
// defence is dead weight or the probe cannot see what it claims to. Several only fail under one
// reading of WRITE_RESTRICTED, which is why the model has the switch and the plan must not rely on
// either reading.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { type Ace, aceToSddl } from '../../src/windows/acl.js';
import type { WriteRestrictedReading } from '../../src/windows/model/access-check.js';
import { type CommandPlan, offlineUserCondition } from '../../src/windows/plan.js';
import { AMBIENT_DENY, PROTECT_DENY } from '../../src/windows/rights.js';
import { SID } from '../../src/windows/sids.js';
import { type Installed, install, runCommand, runProbe } from './harness.js';
import { PROBES } from './probes.js';

const probe = (id: string) => {
  const p = PROBES.find((x) => x.id === id);
  if (!p) throw new Error(`no probe ${id}`);
  return p;
};

function mapAces(plan: CommandPlan, f: (a: Ace, path: string) => Ace[]): CommandPlan {
  return {
    ...plan,
    aclSteps: plan.aclSteps.map((s) => (s.kind === 'add-aces' ? { ...s, aces: s.aces.flatMap((a) => f(a, s.path)) } : s)),
  };
}

async function outcome(reading: WriteRestrictedReading, probeId: string, weaken: (plan: CommandPlan, env: Installed) => CommandPlan, before?: (env: Installed) => void) {
  const env = await install({ reading });
  await runCommand(env, env.layout.sibling, {}, (token, machine) => {
    machine.fs.writeFile(token, `${env.layout.sibling}\\made-by-sandbox.txt`, 'x');
    machine.fs.writeFile(token, `${env.tmps[env.layout.sibling]}\\build.log`, 'log');
    return 0;
  }, (p) => weaken(p, env));
  before?.(env);
  const run = await runCommand(env, env.layout.workspace, {}, () => 0, (p) => weaken(p, env));
  return runProbe(probe(probeId), run.child, env.machine, run.vars).outcome;
}

interface Case {
  name: string;
  probe: string;
  /** Readings under which the weakened plan lets the probe through. */
  breaksUnder: WriteRestrictedReading[];
  weaken: (plan: CommandPlan, env: Installed) => CommandPlan;
  before?: (env: Installed) => void;
}

const CASES: Case[] = [
  {
    name: 'protected paths denied only for the capability SID (the restricted pass), as Codex does',
    probe: 'config-delete',
    breaksUnder: ['generic-write'],
    weaken: (plan, env) => mapAces(plan, (a) => (a.type === 'deny' && a.sid === env.state.groupSid ? [] : [a])),
  },
  {
    name: 'the same, for renaming .git away',
    probe: 'gitdir-rename',
    breaksUnder: ['generic-write'],
    weaken: (plan, env) => mapAces(plan, (a) => (a.type === 'deny' && a.sid === env.state.groupSid ? [] : [a])),
  },
  {
    name: 'no DELETE deny on the ancestors of protected paths',
    probe: 'gitdir-rename',
    breaksUnder: ['generic-write', 'generic-write-and-standard'],
    weaken: (plan) => mapAces(plan, (a, path) => (a.type === 'deny' && path.toUpperCase().endsWith('\\.GIT') ? [{ ...a, mask: a.mask & ~0x10000 }] : [a])),
  },
  {
    name: 'grants to the shared sandbox group instead of a per-workspace slot group',
    probe: 'sibling-delete',
    breaksUnder: ['generic-write'],
    weaken: (plan, env) => mapAces(plan, (a) => (a.type === 'allow' && a.sid === plan.slot?.sid ? [{ ...a, sid: env.state.groupSid }] : [a])),
  },
  {
    name: 'other workspaces\' slot groups left enabled in the child token',
    probe: 'sibling-delete',
    breaksUnder: ['generic-write'],
    weaken: (plan) => ({ ...plan, token: { ...plan.token, sidsToDisable: [SID.Administrators] } }),
  },
  {
    name: 'no OWNER RIGHTS ACE on writable roots (the owner keeps implicit WRITE_DAC)',
    probe: 'sibling-reacl-own',
    breaksUnder: ['generic-write'],
    weaken: (plan) => mapAces(plan, (a) => (a.sid === SID.OwnerRights ? [] : [a])),
  },
  {
    name: "the sandbox user SID as a restricting SID (as Codex's elevated runner does)",
    probe: 'sandbox-profile-write',
    breaksUnder: ['generic-write', 'generic-write-and-standard'],
    weaken: (plan) => ({ ...plan, token: { ...plan.token, restrictingSids: [...plan.token.restrictingSids, plan.identity.userSid] } }),
  },
  {
    name: 'no ambient deny on broad-writable directories',
    probe: 'broad-delete',
    breaksUnder: ['generic-write'],
    weaken: (plan) => plan,
    before: (env) => {
      const dacl = env.machine.securityOf('C:\\src\\other')!.dacl!;
      env.machine.fs.setExplicitAndPropagate(env.machine.systemToken(), 'C:\\src\\other', dacl.filter((a) => !(a.type === 'deny' && a.sid === env.state.groupSid && a.mask === AMBIENT_DENY) && (a.flags & 0x10) === 0));
      // Undo the inherited copy too: remove the deny at C:\src.
      const parent = env.machine.securityOf('C:\\src')!.dacl!;
      env.machine.fs.setExplicitAndPropagate(env.machine.systemToken(), 'C:\\src', parent.filter((a) => !(a.type === 'deny' && a.sid === env.state.groupSid) && (a.flags & 0x10) === 0));
    },
  },
  {
    name: 'no read deny on the scratch root (temporary directories would not be private)',
    probe: 'read-other-tmp',
    breaksUnder: ['generic-write', 'generic-write-and-standard'],
    weaken: (plan) => plan,
    before: (env) => {
      const scratch = `${env.layout.home}\\AppData\\Local\\cordon\\scratch`;
      const dacl = env.machine.securityOf(scratch)!.dacl!;
      env.machine.fs.setExplicitAndPropagate(env.machine.systemToken(), scratch, dacl.filter((a) => !(a.type === 'deny' && a.sid === env.state.groupSid) && (a.flags & 0x10) === 0));
    },
  },
  {
    name: 'hard-linked files not frozen before the grant propagates',
    probe: 'user-hardlink-out',
    breaksUnder: ['generic-write', 'generic-write-and-standard'],
    weaken: (plan) => ({ ...plan, aclSteps: plan.aclSteps.filter((s) => s.kind !== 'protect-multilink') }),
  },
  {
    name: 'PROTECT_DENY without DELETE on the hook files',
    probe: 'hooks-delete',
    breaksUnder: ['generic-write', 'generic-write-and-standard'],
    weaken: (plan) => mapAces(plan, (a) => (a.type === 'deny' && a.mask === PROTECT_DENY ? [{ ...a, mask: a.mask & ~0x10000 }] : [a])),
  },
];

describe('removing one defence lets its probe through', () => {
  for (const c of CASES) {
    for (const reading of ['generic-write', 'generic-write-and-standard'] as const) {
      const expected = c.breaksUnder.includes(reading) ? 'allowed' : 'denied';
      it(`${c.name} [${reading}] → ${c.probe} ${expected}`, async () => {
        assert.equal(await outcome(reading, c.probe, c.weaken, c.before), expected);
      });
    }
  }
});

describe('the firewall condition must name a SID the restricted child carries', () => {
  for (const userMatch of [true, false]) {
    it(`a rule scoped to the offline user only ${userMatch ? 'misses' : 'catches'} the write-restricted child when restricting SIDs ${userMatch ? 'are' : 'are not'} consulted`, async () => {
      const env = await install({ restrictingSidsInUserMatch: userMatch });
      const onlyUser = `O:LSD:(A;;CC;;;${env.state.offlineUserSid})`;
      env.machine.firewallRules = env.machine.firewallRules.map((r) => ({ ...r, localUserSddl: onlyUser }));
      const run = await runCommand(env, env.layout.workspace);
      const result = runProbe(probe('net-remote'), run.child, env.machine, run.vars);
      assert.equal(result.outcome, userMatch ? 'allowed' : 'denied');
      // With cordon's condition (user or fence SID) it is caught either way.
      env.machine.firewallRules = env.machine.firewallRules.map((r) => ({ ...r, localUserSddl: offlineUserCondition(env.state.offlineUserSid, run.plan.token.restrictingSids[1]!) }));
      assert.equal(runProbe(probe('net-remote'), run.child, env.machine, run.vars).outcome, 'denied');
    });
  }
});

describe('the printed ACEs', () => {
  it('name the right principals', async () => {
    const env = await install();
    const run = await runCommand(env, env.layout.workspace);
    const root = run.plan.aclSteps.find((s) => s.kind === 'add-aces' && s.path === env.layout.workspace);
    assert.ok(root && root.kind === 'add-aces');
    const sddl = root.aces.map(aceToSddl).join('');
    assert.match(sddl, new RegExp(`\\(A;OICI;0x1301bf;;;${run.plan.slot!.sid}\\)`));
    assert.match(sddl, new RegExp(`\\(A;OICI;0x1301bf;;;${run.plan.capabilitySid}\\)`));
    assert.match(sddl, /\(A;OICI;0x20000;;;OW\)/);
  });
});
