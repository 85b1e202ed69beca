// The reduced tier (no setup, no elevation: a write-restricted token of the user's own, plus ACEs)
// must say what it does not protect, and say exactly that: every probe it lets through must fall
// under a gap it declares, and every declared gap must be shown by some probe under at least one
// reading of WRITE_RESTRICTED.

import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { describe, it } from 'node:test';
import { MemoryManifestStore } from '../../src/windows/enforcer/manifest.js';
import { prepareCommand } from '../../src/windows/enforcer/prepare.js';
import { WRITE_RESTRICTED_READINGS, type WriteRestrictedReading } from '../../src/windows/model/access-check.js';
import { modelHost } from '../../src/windows/model/host.js';
import { sampleEnv, sampleMachine } from '../../src/windows/model/sample.js';
import { ModelWindowsSystem } from '../../src/windows/model/system.js';
import { createRestrictedToken, withDefaultDacl } from '../../src/windows/model/token.js';
import { REDUCED_TIER_GAPS, compileCommandPlan } from '../../src/windows/plan.js';
import { resolveWindowsPolicy } from '../../src/windows/resolve.js';
import { PROXY_PORT, runProbe } from './harness.js';
import { type Probe, probesFor } from './probes.js';

type Gap = keyof typeof REDUCED_TIER_GAPS;

/** Which declared gap explains a probe getting through. */
const GAP_OF: Record<string, Gap> = {
  'net-remote': 'network', 'net-remote-v6': 'network', 'net-dns-udp': 'network', 'net-loopback-other': 'network',
  'net-loopback-v6-other': 'network', 'net-loopback-udp': 'network',
  'read-ssh-key': 'readSecrets', 'read-aws': 'readSecrets', 'read-ssh-identityfile': 'readSecrets', 'read-gcloud': 'readSecrets', 'read-cordon-state': 'readSecrets', 'read-other-tmp': 'readSecrets',
  'home-delete': 'deleteOutside', 'home-steal': 'deleteOutside', 'sibling-delete': 'deleteOutside', 'sibling-delete-own': 'deleteOutside', 'broad-delete': 'deleteOutside',
  'home-reacl': 'reaclOutside', 'sibling-reacl-own': 'reaclOutside',
  'hooks-delete': 'deleteProtected', 'hooks-rename-dir': 'deleteProtected', 'config-delete': 'deleteProtected', 'config-rename': 'deleteProtected',
  'config-replace': 'deleteProtected', 'gitdir-rename': 'deleteProtected', 'config-reacl': 'deleteProtected',
};

/** Each probe runs on a fresh machine: a probe that gets through may change what the next one sees. */
async function reducedRun(reading: WriteRestrictedReading) {
  const failing: string[] = [];
  let plan!: Awaited<ReturnType<typeof reducedProbe>>['plan'];
  for (const probe of probesFor('windows').filter((p) => p.network !== 'online' && p.id !== 'sandbox-profile-write')) {
    const r = await reducedProbe(reading, probe);
    plan = r.plan;
    if (probe.expect === 'allowed') assert.equal(r.outcome, 'allowed', `${probe.id} must work in the reduced tier`);
    else if (r.outcome === 'allowed') failing.push(probe.id);
  }
  return { plan, failing };
}

async function reducedProbe(reading: WriteRestrictedReading, probe: Probe) {
  const layout = sampleMachine({ writeRestrictedReading: reading });
  const machine = layout.machine;
  const user = machine.logon('dev', null, { uacFiltered: true });
  const sys = new ModelWindowsSystem(machine, user);
  const store = new MemoryManifestStore();
  const run = async (workspace: string) => {
    const policy = resolveWindowsPolicy({ allowReduced: true, network: { mode: 'allow-list', allow: ['example.com'] }, workspace }, modelHost(machine, sampleEnv(layout.home), workspace));
    const plan = compileCommandPlan(policy, {
      tier: 'reduced', command: ['probe'], nonce: randomBytes(16).toString('hex'), installId: 'user-local-install', caller: { name: 'dev', sid: layout.realUser.sid },
      proxyPort: PROXY_PORT, processors: 4,
    });
    await prepareCommand(plan, sys, store);
    const child = withDefaultDacl(createRestrictedToken(user, {
      disableMaxPrivilege: true, writeRestricted: true, sidsToDisable: plan.token.sidsToDisable, restrictingSids: plan.token.restrictingSids,
    }), plan.token.defaultDacl);
    return { plan, child, tmp: policy.writableRoots.find((r) => r.reason === 'tmp')!.path };
  };
  const sibling = await run(layout.sibling);
  machine.fs.writeFile(sibling.child, `${layout.sibling}\\made-by-sandbox.txt`, 'x');
  machine.fs.writeFile(sibling.child, `${sibling.tmp}\\build.log`, 'log');
  const ws = await run(layout.workspace);
  const vars = {
    workspace: layout.workspace, sibling: layout.sibling, home: layout.home, programFiles: 'C:\\Program Files', system: 'C:\\Windows',
    tmp: ws.tmp, appData: `${layout.home}\\AppData\\Roaming`, programData: 'C:\\ProgramData', broadWritable: 'C:\\src\\other',
    cordonState: `${layout.home}\\AppData\\Local\\cordon\\state`, siblingTmp: sibling.tmp,
  };
  return { plan: ws.plan, outcome: runProbe(probe, ws.child, machine, vars).outcome };
}

describe('reduced tier', () => {
  const exhibited = new Set<Gap>();
  for (const reading of WRITE_RESTRICTED_READINGS) {
    it(`[${reading}] lets through only what it declares`, async () => {
      const { plan, failing } = await reducedRun(reading);
      for (const id of failing) {
        const gap = GAP_OF[id];
        assert.ok(gap, `${id} got through but no declared gap covers it`);
        assert.ok(plan.notProtected.includes(REDUCED_TIER_GAPS[gap]), `${id}: gap ${gap} is not declared`);
        exhibited.add(gap);
      }
      if (reading === 'generic-write-and-standard') {
        // With DELETE and WRITE_DAC in the restricted pass, only reads and the network stay open.
        assert.deepEqual([...new Set(failing.map((id) => GAP_OF[id]))].sort(), ['network', 'readSecrets']);
      }
    });
  }
  it('every declared gap is real under some reading', () => {
    assert.deepEqual([...exhibited].sort(), (Object.keys(REDUCED_TIER_GAPS) as Gap[]).sort());
  });
});
