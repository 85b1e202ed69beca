// A sample developer machine for the model: default-install ACLs on C:\ (as `icacls` shows them on
// a clean Windows 10/11; developer mode on, so anyone may create symbolic links there), a second NTFS volume D:\ with the default ACL of a freshly formatted
// volume, one developer with a profile full of secrets and three repositories, one junction and one
// hard link that point out of a workspace.
//
// ACLs are written in SDDL with the rights icacls prints: F=FA, M=0x1301bf, RX=0x1200a9,
// (WD,AD,WEA,WA)=0x116, AD=0x4.

import { parseDacl } from '../acl.js';
import { SID } from '../sids.js';
import type { WriteRestrictedReading } from './access-check.js';
import type { FirewallOptions } from './firewall.js';
import { Machine } from './machine.js';

export interface SampleLayout {
  machine: Machine;
  realUser: { name: string; sid: string; password: string };
  admin: { name: string; sid: string; password: string };
  home: string;
  workspace: string;
  sibling: string;
  /** A workspace under a broad-writable directory of the system drive. */
  rootWorkspace: string;
  /** A workspace on the second volume. */
  otherDriveWorkspace: string;
  /** Directory holding the user's pre-existing hard-link target. */
  documents: string;
}

function sd(owner: string, dacl: string) {
  const parsed = parseDacl(dacl);
  return { owner, dacl: parsed.dacl, daclProtected: parsed.daclProtected };
}

export interface SampleOptions {
  writeRestrictedReading?: WriteRestrictedReading;
  firewall?: Partial<FirewallOptions>;
}

export function sampleMachine(options: SampleOptions = {}): SampleLayout {
  const machine = new Machine({
    writeRestrictedReading: options.writeRestrictedReading ?? 'generic-write',
    firewall: { filtersLoopback: true, restrictingSidsInUserMatch: true, ...options.firewall },
  });
  const fs = machine.fs;
  const dev = machine.addUser('dev', 'dev-password', 'the developer');
  const admin = machine.addUser('admin', 'admin-password', 'a separate administrator');
  machine.groups.get('ADMINISTRATORS')!.members.add(dev.sid);
  machine.groups.get('ADMINISTRATORS')!.members.add(admin.sid);
  machine.groups.get('USERS')!.members.add(dev.sid);
  machine.groups.get('USERS')!.members.add(admin.sid);

  // icacls C:\ — Administrators/SYSTEM full, Users RX, Authenticated Users modify on what is
  // created below the root (IO) and "append data" (create folders) on the root itself.
  fs.addVolume('C', sd(SID.LocalSystem, 'D:(A;OICI;FA;;;BA)(A;OICI;FA;;;SY)(A;OICI;0x1200a9;;;BU)(A;OICIIO;0x1301bf;;;AU)(A;;0x4;;;AU)'), { shortNames: true, unprivilegedSymlinks: true });
  // A freshly formatted data volume: the same shape, plus CREATOR OWNER full control below.
  fs.addVolume('D', sd(SID.Administrators, 'D:(A;OICI;FA;;;BA)(A;OICI;FA;;;SY)(A;OICIIO;0x1301bf;;;AU)(A;;0x4;;;AU)(A;OICI;0x1200a9;;;BU)(A;OICIIO;FA;;;CO)'));

  const ti = SID.TrustedInstaller;
  const systemDir = `D:P(A;;FA;;;${ti})(A;CIIO;GA;;;${ti})(A;;0x1301bf;;;SY)(A;OICIIO;GA;;;SY)(A;;0x1301bf;;;BA)(A;OICIIO;GA;;;BA)(A;;0x1200a9;;;BU)(A;OICIIO;GXGR;;;BU)(A;OICIIO;GA;;;CO)(A;OICI;0x1200a9;;;AC)`;
  fs.adminMkdirs('C:\\Windows', ti, { aces: parseDacl(systemDir).dacl, protected: true });
  fs.adminMkdirs('C:\\Windows\\System32', ti);
  fs.adminWriteFile('C:\\Windows\\System32\\drivers.txt', 'system', ti);
  fs.adminMkdirs('C:\\Program Files', ti, { aces: parseDacl(systemDir).dacl, protected: true });
  fs.adminMkdirs('C:\\Program Files\\Git\\cmd', ti);
  fs.adminWriteFile('C:\\Program Files\\Git\\cmd\\git.exe', 'MZ', ti);
  // icacls C:\ProgramData — Users may create files and folders (CI)(WD,AD,WEA,WA); creators own them.
  fs.adminMkdirs('C:\\ProgramData', SID.LocalSystem, { aces: parseDacl('D:P(A;OICI;FA;;;SY)(A;OICI;FA;;;BA)(A;OICIIO;GA;;;CO)(A;OICI;0x1200a9;;;BU)(A;CI;0x116;;;BU)').dacl, protected: true });
  fs.adminMkdirs('C:\\ProgramData\\SharedTool', SID.Administrators);
  fs.adminWriteFile('C:\\ProgramData\\SharedTool\\settings.ini', 'x=1', SID.Administrators);
  // icacls C:\Users — Everyone and Users may list it.
  fs.adminMkdirs('C:\\Users', SID.LocalSystem, { aces: parseDacl('D:P(A;OICI;FA;;;SY)(A;OICI;FA;;;BA)(A;;0x1200a9;;;BU)(A;OICIIO;GXGR;;;BU)(A;;0x1200a9;;;WD)(A;OICIIO;GXGR;;;WD)').dacl, protected: true });

  // The profile: SYSTEM, Administrators and the user, full control, inherited everywhere below.
  const home = 'C:\\Users\\dev';
  fs.adminMkdirs(home, dev.sid, { aces: parseDacl(`D:P(A;OICI;FA;;;SY)(A;OICI;FA;;;BA)(A;OICI;FA;;;${dev.sid})`).dacl, protected: true });
  const file = (p: string, data = 'data') => fs.adminWriteFile(p, data, dev.sid);
  const dir = (p: string) => fs.adminMkdirs(p, dev.sid);
  dir(`${home}\\.ssh`);
  file(`${home}\\.ssh\\id_rsa`, '-----BEGIN OPENSSH PRIVATE KEY-----');
  file(`${home}\\.ssh\\config`, 'Host deploy\n  IdentityFile ~/keys/deploy_key\n');
  dir(`${home}\\keys`);
  file(`${home}\\keys\\deploy_key`, 'deploy key');
  dir(`${home}\\.aws`);
  file(`${home}\\.aws\\credentials`, '[default]\naws_secret_access_key=x');
  file(`${home}\\.gitconfig`, '[user]\n  name = dev\n');
  dir(`${home}\\AppData\\Roaming\\gcloud`);
  file(`${home}\\AppData\\Roaming\\gcloud\\credentials.db`, 'token');
  dir(`${home}\\AppData\\Roaming\\Microsoft\\Protect`);
  dir(`${home}\\AppData\\Local\\cordon\\state`);
  dir(`${home}\\AppData\\Local\\Programs\\node`);
  file(`${home}\\AppData\\Local\\Programs\\node\\node.exe`, 'MZ');
  dir(`${home}\\Documents`);
  file(`${home}\\Documents\\notes.txt`, 'my notes');
  file(`${home}\\Documents\\linked.txt`, 'hard-linked into the workspace');
  // Legacy junction every profile carries ([MS] "Application Data" compatibility junctions).
  fs.adminJunction(`${home}\\Application Data`, `${home}\\AppData\\Roaming`, dev.sid);

  const repo = (root: string, extra: Record<string, string> = {}) => {
    fs.adminMkdirs(`${root}\\.git\\hooks`, dev.sid);
    fs.adminMkdirs(`${root}\\.git\\objects`, dev.sid);
    fs.adminWriteFile(`${root}\\.git\\config`, '[core]\n  bare = false\n', dev.sid);
    fs.adminWriteFile(`${root}\\.git\\HEAD`, 'ref: refs/heads/main\n', dev.sid);
    fs.adminWriteFile(`${root}\\.git\\hooks\\pre-commit.sample`, '#!/bin/sh\n', dev.sid);
    fs.adminWriteFile(`${root}\\README.md`, '# repo', dev.sid);
    for (const [p, data] of Object.entries(extra)) fs.adminWriteFile(`${root}\\${p}`, data, dev.sid);
  };
  const workspace = `${home}\\src\\app`;
  const sibling = `${home}\\src\\lib`;
  fs.adminMkdirs(`${workspace}\\src`, dev.sid);
  fs.adminMkdirs(`${workspace}\\.vscode`, dev.sid);
  repo(workspace, { 'src\\main.ts': 'export {}', '.vscode\\settings.json': '{}' });
  repo(sibling);
  // A junction the user made inside the workspace, pointing at their documents.
  fs.adminJunction(`${workspace}\\docs-link`, `${home}\\Documents`, dev.sid);
  // A hard link the user made: one file, two names, the SD it got in Documents.
  fs.adminHardLink(`${workspace}\\linked.txt`, `${home}\\Documents\\linked.txt`);

  // C:\src, made by the user at the root: inherits "Authenticated Users: modify".
  const rootWorkspace = 'C:\\src\\tool';
  fs.adminMkdirs(rootWorkspace, dev.sid);
  repo(rootWorkspace);
  fs.adminMkdirs('C:\\src\\other', dev.sid);
  fs.adminWriteFile('C:\\src\\other\\data.txt', 'someone else\'s build output', dev.sid);

  const otherDriveWorkspace = 'D:\\work\\proj';
  fs.adminMkdirs(otherDriveWorkspace, dev.sid);
  repo(otherDriveWorkspace);
  fs.adminWriteFile('D:\\work\\shared.txt', 'shared', dev.sid);

  machine.profiles.add(dev.sid);
  return {
    machine,
    realUser: { name: dev.name, sid: dev.sid, password: dev.password },
    admin: { name: admin.name, sid: admin.sid, password: admin.password },
    home,
    workspace,
    sibling,
    rootWorkspace,
    otherDriveWorkspace,
    documents: `${home}\\Documents`,
  };
}

/** The environment the developer's shell has on the sample machine. */
export function sampleEnv(home = 'C:\\Users\\dev'): Record<string, string> {
  return {
    USERPROFILE: home, APPDATA: `${home}\\AppData\\Roaming`, LOCALAPPDATA: `${home}\\AppData\\Local`,
    TEMP: `${home}\\AppData\\Local\\Temp`, TMP: `${home}\\AppData\\Local\\Temp`, SystemRoot: 'C:\\Windows',
    windir: 'C:\\Windows', SystemDrive: 'C:', ProgramData: 'C:\\ProgramData', ProgramFiles: 'C:\\Program Files',
    'ProgramFiles(x86)': 'C:\\Program Files (x86)', ComSpec: 'C:\\Windows\\System32\\cmd.exe',
    Path: 'C:\\Windows\\System32;C:\\Program Files\\Git\\cmd', PATHEXT: '.COM;.EXE;.BAT;.CMD', USERNAME: 'dev',
    GITHUB_TOKEN: 'ghp_secret', AWS_SECRET_ACCESS_KEY: 'secret', EDITOR: 'code',
  };
}
