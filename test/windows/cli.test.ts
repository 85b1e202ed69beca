// `cordon setup|uninstall` for Windows, as the lead wires them: dry runs on Linux print the whole
// plan; real runs off Windows fail with exit 2 and one line; the Win32 layer loads without koffi.

import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, describe, it } from 'node:test';
import { runWindowsCommand } from '../../src/windows/cli.js';

const dirs: string[] = [];
after(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })));

async function cli(...argv: string[]) {
  let out = '';
  let err = '';
  const code = await runWindowsCommand(argv, { stdout: { write: (s: string) => (out += s) }, stderr: { write: (s: string) => (err += s) } });
  return { code, out, err };
}

describe('cordon setup --dry-run --platform windows', () => {
  it('prints users, SIDs, ACEs, firewall rules, token and job settings, and says it is simulated', async () => {
    const r = await cli('setup', '--dry-run', '--platform', 'windows');
    assert.equal(r.code, 0, r.err);
    for (const expected of [
      /not yet on Windows/,
      /create local group cordon-sandbox/,
      /create local user cordon-offline .*CSPRNG/,
      /SeDenyNetworkLogonRight, SeDenyBatchLogonRight, SeDenyServiceLogonRight, SeDenyRemoteInteractiveLogonRight/,
      /firewall add \(broad, first\) cordon-offline-block-all/,
      /cordon-offline-block-loopback-tcp: outbound block tcp to 127\.0\.0\.0\/8, ::1 ports 1-47799, 47810-65535/,
      /local users: O:LSD:\(A;;CC;;;<cordon-offline SID>\)\(A;;CC;;;<network fence SID>\)/,
      /verify: cordon-offline cannot connect to 127\.0\.0\.1:47799/,
      /credentials\.bin: DPAPI \(machine scope\), file DACL O:BAD:P\(D;;FA;;;<cordon-sandbox SID>\)/,
      /\(D;OICI;0xd017f;;;<cordon-sandbox SID>\)/,
      /\(A;OICI;0x1301bf;;;<cordon-ws0 SID>\)/,
      /\(A;OICI;0x20000;;;OW\)/,
      /CreateRestrictedToken\(runner token, DISABLE_MAX_PRIVILEGE \| WRITE_RESTRICTED \| LUA_TOKEN\)/,
      /restricting SIDs: <workspace capability SID>, <network fence SID>, <RESTRICTED>/,
      /Job: kill on close, no breakaway/,
      /Desktop: WinSta0\\cordon-/,
      /Pipe: \\\\\.\\pipe\\cordon-/,
      /install\.json \(last: marks setup complete\)/,
    ]) assert.match(r.out, expected);
  });

  it('plans the policy given with --policy, and honours --slots and --proxy-ports', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'cordon-cli-'));
    dirs.push(dir);
    const file = path.join(dir, 'policy.json');
    writeFileSync(file, JSON.stringify({ workspace: 'C:\\work\\site', filesystem: { write: ['C:\\work\\cache'] }, network: { mode: 'off' }, limits: { timeout: '10m' } }));
    const r = await cli('setup', '--dry-run', '--platform', 'windows', '--policy', file, '--slots', '4', '--proxy-ports', '50000-50003');
    assert.equal(r.code, 0, r.err);
    assert.match(r.out, /e\.g\. `cordon run -- npm test` in C:\\work\\site/);
    assert.match(r.out, /C:\\work\\cache {2}\(writable root \(user\)/);
    assert.match(r.out, /cordon-ws3/);
    assert.doesNotMatch(r.out, /cordon-ws4/);
    assert.match(r.out, /ports 1-49999, 50004-65535/);
    assert.match(r.out, /Timeout: 600000 ms/);
    assert.match(r.out, /Network: off \(enforced/);
  });

  it('reports a bad policy file in one line with exit 1', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'cordon-cli-'));
    dirs.push(dir);
    const file = path.join(dir, 'bad.json');
    writeFileSync(file, '{ "mode": "yolo" }');
    const r = await cli('setup', '--dry-run', '--platform', 'windows', '--policy', file);
    assert.equal(r.code, 1);
    assert.equal(r.err.trim().split('\n').length, 1);
    assert.match(r.err, /mode/);
  });

  it('uninstall --dry-run lists what would be undone', async () => {
    const r = await cli('uninstall', '--dry-run', '--platform', 'windows');
    assert.equal(r.code, 0, r.err);
    assert.match(r.out, /delete local user cordon-offline and its profile/);
    assert.match(r.out, /remove firewall rule cordon-offline-block-loopback-tcp/);
    assert.match(r.out, /remove C:\\ProgramData\\cordon$/m);
  });
});

describe('off Windows', () => {
  for (const argv of [['setup'], ['setup', '--platform', 'windows'], ['uninstall', '--platform', 'windows']]) {
    it(`\`cordon ${argv.join(' ')}\` exits 2 with one line`, async () => {
      const r = await cli(...argv);
      assert.equal(r.code, 2);
      assert.equal(r.out, '');
      assert.equal(r.err.trim().split('\n').length, 1);
      assert.match(r.err, /--dry-run/);
    });
  }

  it('usage errors exit 2 and name the option', async () => {
    assert.match((await cli('setup', '--bogus')).err, /unknown option --bogus for cordon setup/);
    assert.match((await cli('setup', '--dry-run', '--platform', 'windows', '--slots', '99')).err, /--slots: use a whole number from 1 to 64/);
    assert.match((await cli('setup', '--proxy-ports', '1')).err, /--proxy-ports: use FIRST-LAST/);
    assert.equal((await cli('frobnicate')).code, 2);
  });

  it('the Win32 layer loads without koffi and refuses to start', async () => {
    const win32 = await import('../../src/windows/enforcer/win32.js');
    await assert.rejects(win32.Win32System.load(), /only loads on Windows/);
    await assert.doesNotReject(import('../../src/windows/enforcer/windows-commands.js'));
    await assert.doesNotReject(import('../../src/windows/enforcer/runner-main.js'));
    assert.equal(win32.quoteArg('a b'), '"a b"');
    assert.equal(win32.quoteArg('C:\\dir\\'), 'C:\\dir\\');
    assert.equal(win32.quoteArg('say "hi"\\'), '"say \\"hi\\"\\\\"');
    assert.equal(win32.environmentBlock({ b: '2', A: '1' }).toString('utf16le'), 'A=1\0b=2\0\0');
  });
});
