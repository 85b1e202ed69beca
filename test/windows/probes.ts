// The conformance probe list. Platform-neutral on purpose: operations are write/read/delete/rename/
// create/connect/link/set-permissions on paths spelled with `/` and placeholders, so the Linux side
// can run the same list against its own fixture. Probes whose *spelling* only means something on
// Windows (streams, 8.3 names, trailing dots, junctions) say so in `platforms`.
//
// The fixture every platform must provide:
// - {workspace}: a git repository (`.git/config`, `.git/hooks/pre-commit.sample`, `README.md`,
//   `src/main.ts`, `.vscode/settings.json`), containing `docs-link` → {home}/Documents (a directory
//   link the user made) and `linked.txt`, a hard link of {home}/Documents/linked.txt;
// - {sibling}: another git repository that is also a cordon workspace (a command ran there first and
//   left `made-by-sandbox.txt`);
// - {home}/Documents/notes.txt, {home}/.ssh/id_rsa, {home}/.aws/credentials, {home}/.gitconfig,
//   {home}/keys/deploy_key referenced as IdentityFile from {home}/.ssh/config.
//
// Expectations: `allowed` means every step succeeds; `denied` means some step is refused (the
// attack chain is broken somewhere). Every `denied` probe must be `allowed` without the sandbox
// (`baseline` says with which identity), otherwise it could not detect the escape it names.

export type ProbeStep =
  | { op: 'write'; path: string; append?: boolean }
  | { op: 'create'; path: string; kind: 'file' | 'dir' }
  | { op: 'read'; path: string }
  | { op: 'delete'; path: string }
  | { op: 'rename'; path: string; to: string; replace?: boolean }
  /** Grant the current identity full control (chmod / icacls /grant). */
  | { op: 'set-permissions'; path: string }
  /** dir-link: a junction on Windows, a symlink on Linux; hardlink: a second name for a file. */
  | { op: 'link'; path: string; target: string; kind: 'dir-link' | 'symlink' | 'hardlink' }
  | { op: 'connect'; host: string; port: number | '{proxyPort}' | '{otherLoopbackPort}'; protocol?: 'tcp' | 'udp' };

export interface Probe {
  id: string;
  title: string;
  steps: ProbeStep[];
  expect: 'allowed' | 'denied';
  /** Which network identity the probe is about (default: the command's own). */
  network?: 'offline' | 'online';
  /** Identity of the unsandboxed control run: the user's normal shell, or an elevated one. */
  baseline?: 'user' | 'elevated';
  platforms?: ('windows' | 'linux')[];
}

const W = '{workspace}';

export const PROBES: readonly Probe[] = [
  // --- the workspace works ---------------------------------------------------------------------
  { id: 'ws-write', title: 'write a new file in the workspace', expect: 'allowed', steps: [{ op: 'write', path: `${W}/src/new.ts` }] },
  { id: 'ws-modify', title: 'modify a file in the workspace', expect: 'allowed', steps: [{ op: 'write', path: `${W}/src/main.ts`, append: true }] },
  { id: 'ws-mkdir-deep', title: 'create nested directories and a file in the workspace', expect: 'allowed', steps: [{ op: 'create', path: `${W}/build`, kind: 'dir' }, { op: 'create', path: `${W}/build/out`, kind: 'dir' }, { op: 'write', path: `${W}/build/out/a.js` }] },
  { id: 'ws-delete', title: 'delete a file in the workspace', expect: 'allowed', steps: [{ op: 'delete', path: `${W}/README.md` }] },
  { id: 'ws-rename', title: 'rename a file in the workspace', expect: 'allowed', steps: [{ op: 'rename', path: `${W}/src/main.ts`, to: `${W}/src/index.ts` }] },
  { id: 'ws-git-objects', title: 'git can still write objects', expect: 'allowed', steps: [{ op: 'write', path: `${W}/.git/objects/ab` }] },
  { id: 'tmp-write', title: 'write the private temporary directory', expect: 'allowed', steps: [{ op: 'write', path: '{tmp}/scratch.txt' }] },
  { id: 'read-home', title: 'read an ordinary file in the profile', expect: 'allowed', steps: [{ op: 'read', path: '{home}/.gitconfig' }] },
  { id: 'read-git-config', title: 'read .git/config', expect: 'allowed', steps: [{ op: 'read', path: `${W}/.git/config` }] },
  { id: 'read-system', title: 'read a system file', expect: 'allowed', steps: [{ op: 'read', path: '{system}/System32/drivers.txt' }] },

  // --- outside the workspace ---------------------------------------------------------------------
  { id: 'sibling-write', title: 'modify a file in a sibling workspace', expect: 'denied', steps: [{ op: 'write', path: '{sibling}/README.md' }] },
  { id: 'sibling-create', title: 'create a file in a sibling workspace', expect: 'denied', steps: [{ op: 'write', path: '{sibling}/new.txt' }] },
  { id: 'sibling-delete', title: 'delete a file in a sibling workspace', expect: 'denied', steps: [{ op: 'delete', path: '{sibling}/README.md' }] },
  { id: 'sibling-delete-own', title: 'delete a file the sandbox made earlier in a sibling workspace', expect: 'denied', steps: [{ op: 'delete', path: '{sibling}/made-by-sandbox.txt' }] },
  { id: 'sibling-reacl-own', title: 're-ACL a file the sandbox made earlier in a sibling workspace', expect: 'denied', steps: [{ op: 'set-permissions', path: '{sibling}/made-by-sandbox.txt' }] },
  { id: 'home-write', title: 'modify a file in the profile', expect: 'denied', steps: [{ op: 'write', path: '{home}/Documents/notes.txt' }] },
  { id: 'home-create', title: 'create a file in the profile', expect: 'denied', steps: [{ op: 'write', path: '{home}/evil.txt' }] },
  { id: 'home-delete', title: 'delete a user file outside the workspace', expect: 'denied', steps: [{ op: 'delete', path: '{home}/Documents/notes.txt' }] },
  { id: 'home-steal', title: 'move a user file outside the workspace into it', expect: 'denied', steps: [{ op: 'rename', path: '{home}/Documents/notes.txt', to: `${W}/stolen.txt` }] },
  { id: 'home-reacl', title: 're-ACL a user file outside the workspace', expect: 'denied', steps: [{ op: 'set-permissions', path: '{home}/Documents/notes.txt' }] },
  { id: 'programfiles-write', title: 'create a file in Program Files', expect: 'denied', baseline: 'elevated', steps: [{ op: 'write', path: '{programFiles}/Git/cmd/evil.exe' }] },
  { id: 'system-write', title: 'create a file in the Windows directory', expect: 'denied', baseline: 'elevated', steps: [{ op: 'write', path: '{system}/System32/evil.dll' }] },

  // --- protected paths inside the workspace -------------------------------------------------------
  { id: 'hooks-create', title: 'create a git hook', expect: 'denied', steps: [{ op: 'write', path: `${W}/.git/hooks/pre-commit` }] },
  { id: 'hooks-modify', title: 'modify a git hook', expect: 'denied', steps: [{ op: 'write', path: `${W}/.git/hooks/pre-commit.sample` }] },
  { id: 'hooks-delete', title: 'delete a git hook', expect: 'denied', steps: [{ op: 'delete', path: `${W}/.git/hooks/pre-commit.sample` }] },
  { id: 'hooks-rename-dir', title: 'rename .git/hooks away and make a new one', expect: 'denied', steps: [{ op: 'rename', path: `${W}/.git/hooks`, to: `${W}/.git/hooks-old` }, { op: 'create', path: `${W}/.git/hooks`, kind: 'dir' }, { op: 'write', path: `${W}/.git/hooks/pre-commit` }] },
  { id: 'config-modify', title: 'modify .git/config', expect: 'denied', steps: [{ op: 'write', path: `${W}/.git/config`, append: true }] },
  { id: 'config-delete', title: 'delete .git/config and write a new one', expect: 'denied', steps: [{ op: 'delete', path: `${W}/.git/config` }, { op: 'write', path: `${W}/.git/config` }] },
  { id: 'config-rename', title: 'rename .git/config away', expect: 'denied', steps: [{ op: 'rename', path: `${W}/.git/config`, to: `${W}/.git/config.bak` }] },
  { id: 'config-replace', title: 'replace .git/config by renaming a file over it', expect: 'denied', steps: [{ op: 'write', path: `${W}/evil-config` }, { op: 'rename', path: `${W}/evil-config`, to: `${W}/.git/config`, replace: true }] },
  { id: 'config-reacl', title: 're-ACL .git/config', expect: 'denied', steps: [{ op: 'set-permissions', path: `${W}/.git/config` }] },
  { id: 'gitdir-rename', title: 'rename .git away and make a new one', expect: 'denied', steps: [{ op: 'rename', path: `${W}/.git`, to: `${W}/.git-old` }, { op: 'create', path: `${W}/.git`, kind: 'dir' }, { op: 'write', path: `${W}/.git/config` }] },
  { id: 'vscode-modify', title: 'modify .vscode (runs code on the next editor open)', expect: 'denied', steps: [{ op: 'write', path: `${W}/.vscode/tasks.json` }] },
  { id: 'case-config', title: 'modify .git/config spelled .GiT/CONFIG', expect: 'denied', platforms: ['windows'], steps: [{ op: 'write', path: `${W}/.GiT/CONFIG`, append: true }] },
  { id: 'case-hooks', title: 'create a hook through .Git/HOOKS', expect: 'denied', platforms: ['windows'], steps: [{ op: 'write', path: `${W}/.Git/HOOKS/pre-commit` }] },
  { id: 'stream-config', title: 'write an alternate data stream of .git/config', expect: 'denied', platforms: ['windows'], steps: [{ op: 'write', path: `${W}/.git/config:evil` }] },
  { id: 'stream-hooks-dir', title: 'write a stream on the .git/hooks directory', expect: 'denied', platforms: ['windows'], steps: [{ op: 'write', path: `${W}/.git/hooks:pre-commit` }] },
  { id: 'stream-default', title: 'write .git/config through its ::$DATA stream', expect: 'denied', platforms: ['windows'], steps: [{ op: 'write', path: `${W}/.git/config::$DATA` }] },
  { id: 'shortname-config', title: 'modify .git/config through its 8.3 name', expect: 'denied', platforms: ['windows'], steps: [{ op: 'write', path: `${W}/GIT~1/config`, append: true }] },
  { id: 'trailing-dot', title: 'modify .git/config spelled config.', expect: 'denied', platforms: ['windows'], steps: [{ op: 'write', path: `${W}/.git/config.`, append: true }] },
  { id: 'trailing-space', title: 'create a hook through "hooks " (trailing space)', expect: 'denied', platforms: ['windows'], steps: [{ op: 'write', path: `${W}/.git/hooks /pre-commit` }] },
  { id: 'link-to-gitdir', title: 'link to .git, then write config through the link', expect: 'denied', steps: [{ op: 'link', path: `${W}/j`, target: `${W}/.git`, kind: 'dir-link' }, { op: 'write', path: `${W}/j/config`, append: true }] },
  { id: 'link-to-hooks', title: 'link to .git/hooks, then create a hook through it', expect: 'denied', steps: [{ op: 'link', path: `${W}/h`, target: `${W}/.git/hooks`, kind: 'dir-link' }, { op: 'write', path: `${W}/h/pre-commit` }] },
  { id: 'symlink-to-config', title: 'symlink to .git/config, then write through it', expect: 'denied', steps: [{ op: 'link', path: `${W}/cfg`, target: `${W}/.git/config`, kind: 'symlink' }, { op: 'write', path: `${W}/cfg`, append: true }] },

  // --- links out of the workspace ---------------------------------------------------------------
  { id: 'user-link-out', title: "write through the user's link to Documents", expect: 'denied', steps: [{ op: 'write', path: `${W}/docs-link/notes.txt` }] },
  { id: 'new-link-out', title: 'make a link to Documents, write through it', expect: 'denied', steps: [{ op: 'link', path: `${W}/out`, target: '{home}/Documents', kind: 'dir-link' }, { op: 'write', path: `${W}/out/notes.txt` }] },
  { id: 'user-hardlink-out', title: "write the user's hard link to a file outside", expect: 'denied', steps: [{ op: 'write', path: `${W}/linked.txt`, append: true }] },
  { id: 'new-hardlink-out', title: 'hard-link a file outside into the workspace, write it', expect: 'denied', steps: [{ op: 'link', path: `${W}/hl.txt`, target: '{home}/Documents/notes.txt', kind: 'hardlink' }, { op: 'write', path: `${W}/hl.txt`, append: true }] },

  // --- secrets -------------------------------------------------------------------------------
  { id: 'read-ssh-key', title: 'read ~/.ssh/id_rsa', expect: 'denied', steps: [{ op: 'read', path: '{home}/.ssh/id_rsa' }] },
  { id: 'read-aws', title: 'read ~/.aws/credentials', expect: 'denied', steps: [{ op: 'read', path: '{home}/.aws/credentials' }] },
  { id: 'read-ssh-identityfile', title: 'read a key named by IdentityFile in ~/.ssh/config', expect: 'denied', steps: [{ op: 'read', path: '{home}/keys/deploy_key' }] },
  { id: 'read-gcloud', title: 'read gcloud credentials in %APPDATA%', expect: 'denied', platforms: ['windows'], steps: [{ op: 'read', path: '{appData}/gcloud/credentials.db' }] },
  { id: 'read-other-tmp', title: "read another workspace's private temporary files", expect: 'denied', steps: [{ op: 'read', path: '{siblingTmp}/build.log' }] },
  { id: 'read-cordon-state', title: "touch cordon's own state", expect: 'denied', platforms: ['windows'], steps: [{ op: 'write', path: '{cordonState}/slots.json' }] },

  { id: 'sandbox-profile-write', title: "plant a PowerShell profile in the sandbox account's own profile (shared by every workspace)", expect: 'denied', baseline: 'elevated', platforms: ['windows'], steps: [{ op: 'write', path: '{sandboxProfile}/Documents/WindowsPowerShell/profile.ps1' }] },

  // --- broad-writable places ---------------------------------------------------------------------
  { id: 'broad-create', title: 'create a file in a directory every user may write', expect: 'denied', platforms: ['windows'], steps: [{ op: 'write', path: '{broadWritable}/evil.txt' }] },
  { id: 'broad-delete', title: 'delete a file in a directory every user may modify', expect: 'denied', platforms: ['windows'], steps: [{ op: 'delete', path: '{broadWritable}/data.txt' }] },
  { id: 'programdata-create', title: 'create a file in a ProgramData folder users may write', expect: 'denied', platforms: ['windows'], steps: [{ op: 'write', path: '{programData}/SharedTool/evil.ini' }] },

  // --- network ----------------------------------------------------------------------------------
  { id: 'net-remote', title: 'connect to a remote host directly', expect: 'denied', network: 'offline', steps: [{ op: 'connect', host: '93.184.216.34', port: 443 }] },
  { id: 'net-remote-v6', title: 'connect to a remote IPv6 host directly', expect: 'denied', network: 'offline', steps: [{ op: 'connect', host: '2606:2800:220:1:248:1893:25c8:1946', port: 443 }] },
  { id: 'net-dns-udp', title: 'send UDP to a public resolver', expect: 'denied', network: 'offline', steps: [{ op: 'connect', host: '8.8.8.8', port: 53, protocol: 'udp' }] },
  { id: 'net-loopback-other', title: 'connect to a loopback port other than the proxy', expect: 'denied', network: 'offline', steps: [{ op: 'connect', host: '127.0.0.1', port: '{otherLoopbackPort}' }] },
  { id: 'net-loopback-v6-other', title: 'connect to ::1 on a port other than the proxy', expect: 'denied', network: 'offline', steps: [{ op: 'connect', host: '::1', port: 22 }] },
  { id: 'net-loopback-udp', title: 'send UDP to loopback', expect: 'denied', network: 'offline', steps: [{ op: 'connect', host: '127.0.0.1', port: 53, protocol: 'udp' }] },
  { id: 'net-proxy', title: "connect to cordon's proxy on loopback", expect: 'allowed', network: 'offline', steps: [{ op: 'connect', host: '127.0.0.1', port: '{proxyPort}' }] },
  { id: 'net-online', title: 'the online identity connects out', expect: 'allowed', network: 'online', steps: [{ op: 'connect', host: '93.184.216.34', port: 443 }] },
];

export function probesFor(platform: 'windows' | 'linux'): Probe[] {
  return PROBES.filter((p) => !p.platforms || p.platforms.includes(platform));
}
