// The Windows resolver, run against the model's disk through the WindowsHost interface.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { modelHost } from '../../src/windows/model/host.js';
import { sampleEnv, sampleMachine } from '../../src/windows/model/sample.js';
import { computeWindowsEnv, resolveWindowsPolicy, sshConfigReferences } from '../../src/windows/resolve.js';

function setup() {
  const layout = sampleMachine();
  const host = modelHost(layout.machine, sampleEnv(layout.home), layout.workspace);
  return { layout, host, fs: layout.machine.fs, sid: layout.realUser.sid };
}

describe('Windows resolver', () => {
  it('defaults: the current directory is the writable workspace, plus a private temp dir; secrets are unreadable', () => {
    const { host, layout } = setup();
    const p = resolveWindowsPolicy({}, host);
    assert.equal(p.workspace, layout.workspace);
    assert.deepEqual(p.writableRoots.map((r) => r.reason), ['workspace', 'tmp']);
    assert.match(p.writableRoots[1]!.path, /^C:\\Users\\dev\\AppData\\Local\\cordon\\scratch\\[0-9a-f]{16}\\tmp$/);
    assert.equal(p.env.vars.TEMP, p.writableRoots[1]!.path);
    const denied = p.denyRead.map((d) => d.path);
    for (const s of ['.ssh', '.aws', 'keys\\deploy_key', 'AppData\\Roaming\\gcloud', 'AppData\\Roaming\\Microsoft\\Protect']) {
      assert.ok(denied.includes(`${layout.home}\\${s}`), `${s} is unreadable`);
    }
    assert.ok(!denied.includes(`${layout.home}\\.gitconfig`));
  });

  it('protects .git/hooks and .git/config, and .vscode when it exists', () => {
    const { host, layout } = setup();
    const p = resolveWindowsPolicy({}, host);
    const prot = p.protected.map((x) => `${x.path.slice(layout.workspace.length + 1)}:${x.reason}:${x.exists}`);
    assert.deepEqual(prot.sort(), ['.git\\config:git-config:true', '.git\\hooks:git-hooks:true', '.vscode:runs-code-later:true']);
  });

  it('finds git metadata by NTFS rules: any case, case-sensitive twins, gitfiles, nested repos, submodules, a missing hooks dir', () => {
    const { host, layout, fs, sid } = setup();
    const ws = layout.workspace;
    fs.adminMkdirs(`${ws}\\vendor\\lib\\.GIT`, sid);
    fs.adminWriteFile(`${ws}\\vendor\\lib\\.GIT\\CONFIG`, '', sid);
    fs.adminMkdirs(`${ws}\\cs`, sid);
    fs.adminSetCaseSensitive(`${ws}\\cs`, true);
    fs.adminMkdirExactCase(`${ws}\\cs`, '.git', sid);
    fs.adminMkdirExactCase(`${ws}\\cs`, '.GIT', sid);
    fs.adminMkdirs(`${ws}\\.git\\modules\\sub\\hooks`, sid);
    fs.adminWriteFile(`${ws}\\.git\\modules\\sub\\HEAD`, 'x', sid);
    fs.adminWriteFile(`${ws}\\.git\\modules\\sub\\config`, '', sid);
    fs.adminMkdirs(`${ws}\\sub`, sid);
    fs.adminWriteFile(`${ws}\\sub\\.git`, 'gitdir: ../.git/modules/sub\n', sid);
    const p = resolveWindowsPolicy({}, host);
    const has = (suffix: string, reason?: string) => p.protected.some((x) => x.path === `${ws}\\${suffix}` && (!reason || x.reason === reason));
    assert.ok(has('vendor\\lib\\.GIT\\CONFIG', 'git-config'));
    assert.ok(has('vendor\\lib\\.GIT\\hooks'), 'a nested repo without hooks gets one materialised');
    assert.equal(p.protected.find((x) => x.path === `${ws}\\vendor\\lib\\.GIT\\hooks`)!.exists, false);
    assert.ok(has('cs\\.git\\hooks') && has('cs\\.GIT\\hooks'), 'both case twins are protected');
    assert.ok(has('.git\\modules\\sub\\config') && has('.git\\modules\\sub\\hooks'), 'submodule metadata');
    assert.ok(has('sub\\.git', 'git-config'), 'a gitfile decides where git looks: protected');
  });

  it('reads IdentityFile and Include from ~/.ssh/config', () => {
    const { host, layout, fs, sid } = setup();
    fs.adminWriteFile(`${layout.home}\\.ssh\\config`, 'Include conf.d/*\nHost a\n  IdentityFile ~/keys/deploy_key\n', sid);
    fs.adminMkdirs(`${layout.home}\\.ssh\\conf.d`, sid);
    fs.adminWriteFile(`${layout.home}\\.ssh\\conf.d\\work`, 'Host b\n  IdentityFile C:\\keys\\work.pem\n  CertificateFile none\n', sid);
    assert.deepEqual(sshConfigReferences(host).sort(), [`${layout.home}\\keys\\deploy_key`, 'C:\\keys\\work.pem']);
  });

  it('refuses roots that must never be writable, naming the field', () => {
    const { host } = setup();
    assert.throws(() => resolveWindowsPolicy({ filesystem: { write: ['~'] } }, host), /filesystem\.write\[0\]: the whole profile/);
    assert.throws(() => resolveWindowsPolicy({ filesystem: { write: ['C:\\'] } }, host), /filesystem\.write\[0\]: a drive root/);
    assert.throws(() => resolveWindowsPolicy({ filesystem: { write: ['C:\\Windows\\System32'] } }, host), /system directory/);
    assert.throws(() => resolveWindowsPolicy({ filesystem: { write: ['%LOCALAPPDATA%\\cordon\\state'] } }, host), /cordon's own state/);
    assert.throws(() => resolveWindowsPolicy({ filesystem: { write: ['D:\\nope'] } }, host), /filesystem\.write\[0\]: D:\\nope does not exist/);
    assert.throws(() => resolveWindowsPolicy({ workspace: '\\\\server\\share' }, host), /workspace: network paths are not supported/);
    assert.throws(() => resolveWindowsPolicy({ limits: { timeout: 'soon' } }, host), /limits\.timeout: 'soon' is not a duration/);
  });

  it('follows a linked workspace to its target and says so', () => {
    const { host, layout } = setup();
    const p = resolveWindowsPolicy({ workspace: `${layout.workspace}\\docs-link` }, host);
    assert.equal(p.workspace, `${layout.home}\\Documents`);
    assert.match(p.warnings.join('\n'), /is a link; the sandbox works on its target/);
  });

  it('allowRead re-opens a secret; limits parse', () => {
    const { host, layout } = setup();
    const p = resolveWindowsPolicy({ filesystem: { allowRead: ['~/.aws'] }, limits: { timeout: '90s', memory: '512M', pids: 64 } }, host);
    assert.ok(!p.denyRead.some((d) => d.path === `${layout.home}\\.aws`));
    assert.deepEqual(p.limits, { timeoutMs: 90000, memoryBytes: 512 * 1024 * 1024, pids: 64, cpu: null });
  });
});

describe('Windows environment', () => {
  it('is case-insensitive, scrubs secrets, keeps what is asked, and lets set win', () => {
    const env = computeWindowsEnv({ Path: 'a', GITHUB_TOKEN: 't', aws_secret_access_key: 's', EDITOR: 'code' }, 'all', [], ['GITHUB_TOKEN'], { PATH: 'b' });
    assert.deepEqual(env.vars, { GITHUB_TOKEN: 't', EDITOR: 'code', PATH: 'b' });
    assert.deepEqual(env.removed, ['aws_secret_access_key']);
    const core = computeWindowsEnv({ SystemRoot: 'C:\\Windows', EDITOR: 'code', path: 'x' }, 'core', [], [], {});
    assert.deepEqual(Object.keys(core.vars).sort(), ['SystemRoot', 'path']);
  });
});
