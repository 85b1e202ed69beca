// Setup orchestration against the recording fake over the model: order, fail-closed firewall
// ordering, rollback after a failure at every state-changing call, idempotent re-runs, uninstall.

import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { describe, it } from 'node:test';
import { MemoryManifestStore, pendingChanges } from '../../../src/windows/enforcer/manifest.js';
import { SetupError, generatePassword, meetsComplexity, passwordFromBytes, runSetup } from '../../../src/windows/enforcer/setup.js';
import { undoAll } from '../../../src/windows/enforcer/uninstall.js';
import { gatherSetupFacts } from '../../../src/windows/facts.js';
import { modelHost } from '../../../src/windows/model/host.js';
import { recording } from '../../../src/windows/model/recording.js';
import { sampleEnv, sampleMachine } from '../../../src/windows/model/sample.js';
import { ModelWindowsSystem } from '../../../src/windows/model/system.js';
import { DEFAULT_SETUP_SETTINGS, compileSetupPlan } from '../../../src/windows/plan.js';
import { install, runCommand } from '../harness.js';
import { diff, snapshot } from '../snapshot.js';

const INSTALL_ID = 'feedfacecafebeef';

async function prepared(options: { filtersLoopback?: boolean } = {}) {
  const layout = sampleMachine({ firewall: { filtersLoopback: options.filtersLoopback ?? true } });
  const admin = layout.machine.logon('dev', null, { elevated: true });
  const base = new ModelWindowsSystem(layout.machine, admin);
  const facts = await gatherSetupFacts(base, modelHost(layout.machine, sampleEnv(layout.home), layout.workspace), { drives: ['C', 'D'] });
  const plan = compileSetupPlan({ ...DEFAULT_SETUP_SETTINGS, slotCount: 2 }, facts);
  return { layout, base, plan, admin };
}

const options = (sid: string) => ({
  realUserSid: sid, installId: INSTALL_ID, now: () => '2026-01-01T00:00:00Z',
  randomPassword: () => generatePassword((n) => randomBytes(n)),
});

const IGNORE_STATE_DIR = (p: string) => p.toUpperCase().startsWith('C:\\PROGRAMDATA\\CORDON');

describe('setup', () => {
  it('refuses to run unelevated, changing nothing', async () => {
    const { layout, plan } = await prepared();
    const before = snapshot(layout.machine);
    const user = new ModelWindowsSystem(layout.machine, layout.machine.logon('dev', null, { uacFiltered: true }));
    await assert.rejects(runSetup(plan, user, new MemoryManifestStore(), options(layout.realUser.sid)), /must run as an administrator/);
    assert.deepEqual(diff(before, snapshot(layout.machine)), []);
  });

  it('makes its changes in plan order: accounts, hiding, rights, firewall, credentials, ACEs, install state last', async () => {
    const { layout, base, plan } = await prepared();
    const { sys, mutations } = recording(base);
    await runSetup(plan, sys, new MemoryManifestStore(), options(layout.realUser.sid));
    const kinds = mutations().map((c) => c.method);
    const firstIndex = (m: string) => kinds.indexOf(m);
    const lastIndex = (m: string) => kinds.lastIndexOf(m);
    assert.ok(lastIndex('createLocalGroup') < firstIndex('createLocalUser'));
    assert.ok(lastIndex('createLocalUser') < firstIndex('addGroupMember'));
    assert.ok(lastIndex('addGroupMember') < firstIndex('setUserHidden'));
    assert.ok(lastIndex('addAccountRights') < firstIndex('putFirewallRule'));
    assert.ok(lastIndex('removeFirewallRule') < firstIndex('writeFileWithSddl'), 'credentials are stored only once the fence is in place');
    const writes = mutations().filter((c) => c.method === 'writeFileWithSddl').map((c) => String(c.args[0]));
    assert.match(writes.at(-1)!, /install\.json$/, 'the install state is the last write');
    assert.equal(kinds.at(-1), 'writeFileWithSddl');
  });

  it('installs the broad block first: at every point the offline identity reaches no more than at the end', async () => {
    const { layout, base, plan } = await prepared();
    const machine = layout.machine;
    const targets = [['93.184.216.34', 443], ['127.0.0.1', 8080], ['127.0.0.1', 47801], ['::1', 22]] as const;
    const reachable = () => {
      const user = machine.users.get('CORDON-OFFLINE');
      if (!user) return 'no user';
      const token = machine.logon('cordon-offline', null);
      return targets.filter(([h, p]) => machine.connect({ token, protocol: 'tcp', remoteAddress: h, remotePort: p }).allowed).map(([h, p]) => `${h}:${p}`).join(' ');
    };
    const seen: string[] = [];
    const { sys } = recording(base, {
      when: (method) => {
        if (method === 'putFirewallRule' || method === 'removeFirewallRule' || method === 'writeFileWithSddl') seen.push(`${method}: ${reachable()}`);
        return false;
      },
    });
    await runSetup(plan, sys, new MemoryManifestStore(), options(layout.realUser.sid));
    const final = reachable();
    assert.equal(final, '127.0.0.1:47801');
    const firstRule = seen.findIndex((s) => s.startsWith('putFirewallRule'));
    for (const s of seen.slice(firstRule + 1)) {
      const got = s.split(': ')[1]!.split(' ').filter(Boolean);
      assert.ok(got.every((t) => final.split(' ').includes(t)), `after the first rule the offline user must reach nothing beyond the proxy: ${s}`);
    }
    // Before any rule exists the offline user is unfenced, but nothing can use it yet: no
    // credentials and no install state have been written (checked in the order test).
    assert.ok(seen[firstRule]!.includes('93.184.216.34'));
  });

  it('fails closed when the firewall does not fence loopback, and undoes everything', async () => {
    const { layout, base, plan } = await prepared({ filtersLoopback: false });
    const before = snapshot(layout.machine, IGNORE_STATE_DIR);
    const store = new MemoryManifestStore();
    await assert.rejects(runSetup(plan, base, store, options(layout.realUser.sid)), (e: unknown) => {
      assert.ok(e instanceof SetupError);
      assert.match(e.message, /fw-verify.*cordon cannot fence the network.*every change made so far was undone/);
      return true;
    });
    assert.deepEqual(diff(before, snapshot(layout.machine, IGNORE_STATE_DIR)), []);
    assert.deepEqual(pendingChanges(await store.load()), []);
  });

  it('rolls back completely after a failure at any state-changing call', async () => {
    const { layout, base, plan } = await prepared();
    const { sys: counter, mutations } = recording(base);
    await runSetup(plan, counter, new MemoryManifestStore(), options(layout.realUser.sid));
    const total = mutations().length;
    assert.ok(total > 30, `setup makes many changes (${total})`);
    for (let n = 1; n <= total; n += 1) {
      const fresh = await prepared();
      const before = snapshot(fresh.layout.machine, IGNORE_STATE_DIR);
      const { sys } = recording(fresh.base, { atMutation: n });
      const store = new MemoryManifestStore();
      await assert.rejects(runSetup(fresh.plan, sys, store, options(fresh.layout.realUser.sid)), (e: unknown) => e instanceof SetupError && e.rolledBack && /injected failure/.test(e.message));
      assert.deepEqual(diff(before, snapshot(fresh.layout.machine, IGNORE_STATE_DIR)), [], `failure at change ${n} left changes behind`);
      assert.deepEqual(pendingChanges(await store.load()), [], `failure at change ${n} left journal entries`);
    }
  });

  it('is idempotent: a second run changes no account, member, right or ACE, and re-fences broad-first', async () => {
    const { layout, base, plan } = await prepared();
    const store = new MemoryManifestStore();
    await runSetup(plan, base, store, options(layout.realUser.sid));
    const after1 = snapshot(layout.machine);
    const { sys, mutations } = recording(base);
    await runSetup(plan, sys, store, options(layout.realUser.sid));
    const second = mutations().map((c) => `${c.method}(${String(c.args[0])})`);
    assert.deepEqual(second, [
      'setUserPassword(cordon-offline)', 'setUserPassword(cordon-online)',
      'putFirewallRule([object Object])', 'removeFirewallRule(cordon-offline-block-all)',
      'writeFileWithSddl(C:\\ProgramData\\cordon\\credentials.bin)', 'writeFileWithSddl(C:\\ProgramData\\cordon\\install.json)',
    ]);
    const changed = diff(after1, snapshot(layout.machine)).filter((k) => !/credentials\.bin|install\.json/.test(k));
    assert.deepEqual(changed, []);
  });

  it('refuses accounts it did not create', async () => {
    const { layout, base, plan } = await prepared();
    layout.machine.addUser('cordon-offline', 'someone else', 'not ours');
    await assert.rejects(runSetup(plan, base, new MemoryManifestStore(), options(layout.realUser.sid)), /local user named cordon-offline exists and was not created by cordon/);
  });

  it('hides the users, denies network/batch/service/RDP logon to the group, and locks the credential store', async () => {
    const env = await install();
    const m = env.machine;
    assert.equal(m.users.get('CORDON-OFFLINE')!.hidden, true);
    assert.equal(m.users.get('CORDON-ONLINE')!.hidden, true);
    assert.deepEqual([...m.accountRights.get(env.state.groupSid)!].sort(), ['SeDenyBatchLogonRight', 'SeDenyNetworkLogonRight', 'SeDenyRemoteInteractiveLogonRight', 'SeDenyServiceLogonRight']);
    // The sandbox account cannot read its own password blob; the real user can.
    const offline = m.logon('cordon-offline', env.passwords.get('cordon-offline')!);
    assert.throws(() => m.fs.readFile(offline, env.state.credentialPath), /ACCESS_DENIED/);
    assert.doesNotThrow(() => m.fs.readFile(env.userToken, env.state.credentialPath));
  });
});

describe('uninstall', () => {
  it('removes users, groups, profiles, rules, credentials and every ACE cordon added, from the manifests', async () => {
    const layout0 = sampleMachine();
    const before = snapshot(layout0.machine);
    const env = await install();
    await runCommand(env, env.layout.sibling);
    await runCommand(env, env.layout.workspace, { network: { mode: 'full' } });
    await runCommand(env, env.layout.rootWorkspace);
    assert.ok(env.machine.profiles.size > 1, 'the sandbox accounts have profiles now');
    const userFailures = await undoAll(env.userSys, env.userStore);
    const machineFailures = await undoAll(env.adminSys, env.machineStore);
    assert.deepEqual([...userFailures, ...machineFailures], []);
    await env.adminSys.removeTree('C:\\ProgramData\\cordon');
    // The one residue, by design: the hard-linked file's DACL stays frozen (same access).
    const residue = diff(before, snapshot(env.machine));
    assert.deepEqual(residue, ['fs:C:\\Users\\dev\\Documents\\linked.txt', 'fs:C:\\Users\\dev\\src\\app\\linked.txt']);
    const sddl = snapshot(env.machine)['fs:C:\\Users\\dev\\Documents\\linked.txt']!;
    assert.match(sddl, /D:P/);
  });

  it('dry run lists the changes and changes nothing', async () => {
    const env = await install();
    const after = snapshot(env.machine);
    const listed: string[] = [];
    await undoAll(env.adminSys, env.machineStore, { dryRun: true, onUndo: (c) => listed.push(c.op) });
    assert.ok(listed.includes('created-user') && listed.includes('put-firewall-rule') && listed.includes('added-aces'));
    assert.deepEqual(diff(after, snapshot(env.machine)), []);
  });
});

describe('passwords', () => {
  it('come from the random bytes, 32 characters, meeting the complexity rule', () => {
    const p = generatePassword((n) => randomBytes(n));
    assert.equal(p.length, 32);
    assert.ok(meetsComplexity(p));
    assert.equal(passwordFromBytes(new Uint8Array(32).fill(0)), 'A'.repeat(32));
    assert.equal(meetsComplexity('A'.repeat(32)), false);
  });
});
