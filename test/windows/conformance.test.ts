// Conformance: every probe against the model with the compiled plan applied by the real
// orchestration, under both readings of WRITE_RESTRICTED and both readings of the firewall's
// local-user match; and every `denied` probe against the same machine without cordon, to show the
// probe would see the escape.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { WRITE_RESTRICTED_READINGS } from '../../src/windows/model/access-check.js';
import { bareMachine, install, runCommand, runProbe } from './harness.js';
import { probesFor } from './probes.js';

const PROBES = probesFor('windows');

async function sandboxed(reading: (typeof WRITE_RESTRICTED_READINGS)[number], restrictingSidsInUserMatch: boolean) {
  const env = await install({ reading, restrictingSidsInUserMatch });
  // The sibling was a workspace first: its grants exist and a sandboxed command left a file there.
  await runCommand(env, env.layout.sibling, {}, (token, machine) => {
    machine.fs.writeFile(token, `${env.layout.sibling}\\made-by-sandbox.txt`, 'x');
    machine.fs.writeFile(token, `${env.tmps[env.layout.sibling]}\\build.log`, 'log');
    return 0;
  });
  const offline = await runCommand(env, env.layout.workspace, { network: { mode: 'allow-list', allow: ['example.com'] } });
  const online = await runCommand(env, env.layout.workspace, { network: { mode: 'full' } });
  return { env, offline, online };
}

for (const reading of WRITE_RESTRICTED_READINGS) {
  for (const userMatch of [true, false]) {
    describe(`conformance, WRITE_RESTRICTED reading '${reading}', restricting SIDs in firewall match: ${userMatch}`, () => {
      for (const probe of PROBES) {
        it(`${probe.id}: ${probe.title} → ${probe.expect}`, async () => {
          const { env, offline, online } = await sandboxed(reading, userMatch);
          const run = probe.network === 'online' ? online : offline;
          const result = runProbe(probe, run.child, env.machine, run.vars);
          assert.equal(result.outcome, probe.expect, `${probe.id}: ${result.detail}`);
        });
      }
    });
  }
}

describe('every denied probe detects its escape without the sandbox', () => {
  for (const probe of PROBES.filter((p) => p.expect === 'denied')) {
    it(`${probe.id} is allowed unsandboxed (${probe.baseline ?? 'user'})`, () => {
      const bare = bareMachine();
      const token = probe.baseline === 'elevated' ? bare.elevated : bare.user;
      const result = runProbe(probe, token, bare.layout.machine, bare.vars);
      assert.equal(result.outcome, 'allowed', `${probe.id} unsandboxed: ${result.detail}`);
    });
  }
});

describe('every allowed probe also works unsandboxed (the fixture is sound)', () => {
  for (const probe of PROBES.filter((p) => p.expect === 'allowed' && p.network === undefined)) {
    it(probe.id, () => {
      const bare = bareMachine();
      assert.equal(runProbe(probe, bare.user, bare.layout.machine, bare.vars).outcome, 'allowed');
    });
  }
});
