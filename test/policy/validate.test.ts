import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PolicyError } from '../../src/policy/errors.js';
import { loadPolicy, mergePolicies, readPolicyFile } from '../../src/policy/load.js';
import { parseDuration, parseSize, validatePolicyInput } from '../../src/policy/validate.js';

function rejects(value: unknown, pattern: RegExp): void {
  assert.throws(() => validatePolicyInput(value, 'p.json'), (e: unknown) => {
    assert.ok(e instanceof PolicyError, `expected a PolicyError, got ${String(e)}`);
    assert.match(e.message, pattern);
    assert.ok(!e.message.includes('\n'), 'one line');
    return true;
  });
}

describe('policy validation', () => {
  test('accepts a full, valid policy', () => {
    const p = {
      mode: 'workspace-write',
      workspace: '~/src/app',
      filesystem: { write: ['/var/tmp/build'], protect: ['config/prod.json'], denyRead: ['~/secrets'], allowRead: ['~/.npmrc'] },
      network: { mode: 'allow-list', allow: ['registry.npmjs.org', '*.github.com'], deny: ['evil.example'], transparent: true },
      sockets: { allow: ['$SSH_AUTH_SOCK'] },
      env: { inherit: 'core', scrub: ['MYCO_*'], keep: ['GH_TOKEN'], set: { CI: '1' } },
      limits: { timeout: '10m', memory: '2G', pids: 512, cpu: 1.5 },
      allowReduced: false,
    };
    assert.deepEqual(validatePolicyInput(p, 'p.json'), p);
  });

  test('every malformed field is named, with the fix', () => {
    rejects({ mode: 'write-everything' }, /^p\.json: mode: expected one of read-only \| workspace-write \| full-access/);
    rejects({ netwrok: {} }, /^p\.json: netwrok: unknown field; did you mean "network"\?/);
    rejects({ filesystem: { write: '/tmp' } }, /filesystem\.write: expected a list/);
    rejects({ filesystem: { write: ['/ok', 42] } }, /filesystem\.write\[1\]: expected a non-empty string, got number 42/);
    rejects({ filesystem: { readOnly: [] } }, /filesystem\.readOnly: unknown field; known fields here: write, protect, denyRead, allowRead/);
    rejects({ network: { mode: 'on' } }, /network\.mode: expected one of off \| allow-list \| full/);
    rejects({ env: { set: { 'BAD NAME': 'x' } } }, /env\.set\.BAD NAME: not a valid variable name/);
    rejects({ env: { inherit: true } }, /env\.inherit/);
    rejects({ limits: { timeout: 'soon' } }, /limits\.timeout: cannot read "soon" as a duration; e\.g\./);
    rejects({ limits: { memory: '2 parsecs' } }, /limits\.memory: cannot read/);
    rejects({ limits: { pids: 1.5 } }, /limits\.pids: expected a positive whole number/);
    rejects({ limits: { cpu: -1 } }, /limits\.cpu: expected a positive number/);
    rejects({ allowReduced: 'yes' }, /allowReduced: expected true or false/);
    rejects([], /^p\.json: policy: expected an object/);
    rejects({ workspace: 'a\0b' }, /workspace: contains a NUL/);
  });

  test('network patterns go through the given validator', () => {
    assert.throws(
      () => validatePolicyInput({ network: { allow: ['bad host'] } }, 'p.json', (p) => {
        if (p.includes(' ')) throw new Error('spaces are not allowed');
      }),
      /p\.json: network\.allow\[0\]: spaces are not allowed/,
    );
  });

  test('durations and sizes', () => {
    assert.equal(parseDuration(90), 90_000);
    assert.equal(parseDuration('1.5m'), 90_000);
    assert.equal(parseDuration('250ms'), 250);
    assert.equal(parseSize('2G'), 2 * 1024 ** 3);
    assert.equal(parseSize('512MiB'), 512 * 1024 ** 2);
    assert.throws(() => parseDuration('0s'), /positive/);
  });
});

describe('policy files and merging', () => {
  test('files that do not parse, are empty or are missing are errors naming the file', () => {
    const dir = mkdtempSync(join(tmpdir(), 'cordon-policy-'));
    try {
      writeFileSync(join(dir, 'bad.json'), '{ "mode": ');
      writeFileSync(join(dir, 'empty.json'), '  \n');
      assert.throws(() => readPolicyFile(join(dir, 'bad.json'), false), /bad\.json: not valid JSON .*; fix the syntax/);
      assert.throws(() => readPolicyFile(join(dir, 'empty.json'), false), /empty\.json: the policy file is empty/);
      assert.throws(() => readPolicyFile(join(dir, 'nope.json'), false), /nope\.json: cannot read the policy file \(ENOENT\)/);
      assert.equal(readPolicyFile(join(dir, 'nope.json'), true), null);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test('stronger layers override scalars and add to lists', () => {
    const merged = mergePolicies([
      { mode: 'read-only', filesystem: { write: ['/a'] }, env: { set: { A: '1', B: '1' } }, limits: { pids: 10 } },
      { mode: 'workspace-write', filesystem: { write: ['/b'] }, env: { set: { B: '2' } } },
    ]);
    assert.deepEqual(merged, { mode: 'workspace-write', filesystem: { write: ['/a', '/b'] }, env: { set: { A: '1', B: '2' } }, limits: { pids: 10 } });
  });

  test('sources are reported strongest first: flags, policy file, user config, defaults', () => {
    const dir = mkdtempSync(join(tmpdir(), 'cordon-policy-'));
    try {
      writeFileSync(join(dir, 'config.json'), JSON.stringify({ mode: 'read-only', limits: { pids: 100 } }));
      writeFileSync(join(dir, 'policy.json'), JSON.stringify({ limits: { pids: 200 } }));
      const loaded = loadPolicy({ flags: { limits: { pids: 300 } }, policyFile: join(dir, 'policy.json'), userConfig: join(dir, 'config.json'), env: {}, home: dir });
      assert.deepEqual(loaded.sources, ['flags', join(dir, 'policy.json'), join(dir, 'config.json'), 'defaults']);
      assert.equal(loaded.input.mode, 'read-only');
      assert.equal(loaded.input.limits?.pids, 300);
      // A broken user config is an error, never a silent fallback to defaults.
      writeFileSync(join(dir, 'config.json'), '{"mode": 1}');
      assert.throws(() => loadPolicy({ userConfig: join(dir, 'config.json'), env: {}, home: dir }), /config\.json: mode: expected one of/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
