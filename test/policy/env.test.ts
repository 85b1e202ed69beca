import assert from 'node:assert/strict';
import { test } from 'node:test';
import { computeEnv } from '../../src/policy/env.js';

const host = {
  PATH: '/usr/bin',
  HOME: '/home/u',
  GITHUB_TOKEN: 'ghp_x',
  AWS_ACCESS_KEY_ID: 'AKIA',
  AWS_REGION: 'eu-west-1',
  OPENAI_API_KEY: 'sk',
  DB_PASSWORD: 'pw',
  MY_SECRET_THING: 's',
  SSH_AUTH_SOCK: '/run/user/1000/ssh',
  KEYTIMEOUT: '1',
  EDITOR: 'vi',
  MYCO_INTERNAL: 'x',
};

test('secret-looking variables are removed by default, others kept', () => {
  const e = computeEnv(host, { inherit: 'all', scrub: [], keep: [], set: {} });
  assert.deepEqual(e.removed, ['AWS_ACCESS_KEY_ID', 'AWS_REGION', 'DB_PASSWORD', 'GITHUB_TOKEN', 'MY_SECRET_THING', 'OPENAI_API_KEY', 'SSH_AUTH_SOCK']);
  assert.equal(e.vars.PATH, '/usr/bin');
  assert.equal(e.vars.KEYTIMEOUT, '1', '*_KEY matches a suffix, not any KEY');
  assert.equal(e.vars.EDITOR, 'vi');
});

test('keep wins over scrub, scrub adds patterns, set wins over all, core inherits a small set', () => {
  const e = computeEnv(host, { inherit: 'all', scrub: ['myco_*'], keep: ['GITHUB_TOKEN'], set: { CI: '1', PATH: '/x' } });
  assert.equal(e.vars.GITHUB_TOKEN, 'ghp_x');
  assert.ok(!('MYCO_INTERNAL' in e.vars));
  assert.equal(e.vars.PATH, '/x');
  assert.equal(e.vars.CI, '1');
  const core = computeEnv(host, { inherit: 'core', scrub: [], keep: ['EDITOR'], set: {} });
  assert.deepEqual(Object.keys(core.vars).sort(), ['EDITOR', 'HOME', 'PATH']);
  const none = computeEnv(host, { inherit: 'none', scrub: [], keep: [], set: { A: 'b' } });
  assert.deepEqual(none.vars, { A: 'b' });
});
