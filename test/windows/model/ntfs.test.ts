// The NTFS namespace and inheritance rules of the model.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ace, isCanonical, parseDacl } from '../../../src/windows/acl.js';
import { inheritedAces } from '../../../src/windows/model/inheritance.js';
import { FileSystem, parsePath } from '../../../src/windows/model/ntfs.js';
import type { Token } from '../../../src/windows/model/token.js';
import { DELETE, FILE_ALL_ACCESS, FILE_DELETE_CHILD, FILE_GENERIC_READ, GENERIC_ALL, MODIFY, READ_EXECUTE } from '../../../src/windows/rights.js';
import { SID } from '../../../src/windows/sids.js';

const ALICE = 'S-1-5-21-1-2-3-1001';
const BOB = 'S-1-5-21-1-2-3-1002';

function who(user: string, privileges: [string, boolean][] = [['SeChangeNotifyPrivilege', true]]): Token {
  return {
    user, userDenyOnly: false, groups: [{ sid: SID.Everyone, enabled: true, denyOnly: false }], restrictingSids: [], writeRestricted: false,
    privileges: new Map(privileges), defaultOwner: user, defaultDacl: null, label: user,
  };
}

function volume(options: { shortNames?: boolean; unprivilegedSymlinks?: boolean } = {}) {
  const fs = new FileSystem({ writeRestrictedReading: 'generic-write' });
  fs.addVolume('C', { owner: SID.LocalSystem, dacl: parseDacl(`D:(A;OICI;FA;;;${ALICE})(A;OICI;0x1200a9;;;${BOB})`).dacl, daclProtected: false }, options);
  return fs;
}

describe('Win32 path rules', () => {
  it('normalise separators, dots and trailing periods/spaces, except under \\\\?\\', () => {
    assert.deepEqual(parsePath('C:/a/./b/../c.  ').components, ['a', 'c']);
    assert.deepEqual(parsePath('\\\\?\\C:\\a\\c.').components, ['a', 'c.']);
    assert.equal(parsePath('C:\\a\\f:s').stream, 's');
    assert.equal(parsePath('C:\\a\\f::$DATA').stream, undefined);
    assert.throws(() => parsePath('\\\\server\\share\\x'), /UNC/);
    assert.throws(() => parsePath('C:\\a:s\\b'), /stream syntax/);
  });

  it('names are case-insensitive, unless the directory is case-sensitive', () => {
    const fs = volume();
    fs.adminMkdirs('C:\\Repo\\.git', ALICE);
    fs.writeFile(who(ALICE), 'C:\\Repo\\.git\\config', '');
    assert.equal(fs.stat('C:\\rEPO\\.GIT\\CONFIG')?.kind, 'file');
    fs.adminSetCaseSensitive('C:\\Repo', true);
    assert.equal(fs.stat('C:\\Repo\\.GIT\\config'), null);
    fs.adminMkdirExactCase('C:\\Repo', '.GIT', ALICE);
    assert.notEqual(fs.stat('C:\\Repo\\.GIT')!.id, fs.stat('C:\\Repo\\.git')!.id);
  });

  it('\\\\?\\ names with a trailing dot are distinct files', () => {
    const fs = volume();
    fs.adminMkdirs('C:\\d', ALICE);
    fs.writeFile(who(ALICE), 'C:\\d\\config', 'real');
    fs.writeFile(who(ALICE), '\\\\?\\C:\\d\\config.', 'other');
    assert.equal(fs.readFile(who(ALICE), 'C:\\d\\config'), 'real');
    assert.equal(fs.readFile(who(ALICE), 'C:\\d\\config.'), 'real');
    assert.equal(fs.readFile(who(ALICE), '\\\\?\\C:\\d\\config.'), 'other');
  });

  it('8.3 short names reach the same object when the volume generates them', () => {
    const fs = volume({ shortNames: true });
    fs.adminMkdirs('C:\\repo\\.git', ALICE);
    fs.writeFile(who(ALICE), 'C:\\repo\\.git\\config.worktree', 'x');
    assert.equal(fs.shortNameOf('C:\\repo\\.git'), 'GIT~1');
    assert.equal(fs.shortNameOf('C:\\repo\\.git\\config.worktree'), 'CONFIG~1.WOR');
    assert.equal(fs.readFile(who(ALICE), 'C:\\repo\\git~1\\CONFIG~1.WOR'), 'x');
    assert.equal(volume().stat('C:\\repo'), null);
  });

  it('streams share the file\'s security descriptor', () => {
    const fs = volume();
    fs.writeFile(who(ALICE), 'C:\\f', 'data');
    fs.writeFile(who(ALICE), 'C:\\f:ads', 'hidden');
    assert.equal(fs.readFile(who(ALICE), 'C:\\f:ads'), 'hidden');
    assert.equal(fs.readFile(who(ALICE), 'C:\\f::$DATA'), 'data');
    assert.throws(() => fs.writeFile(who(BOB), 'C:\\f:ads', 'x'), /ACCESS_DENIED/);
  });
});

describe('bypass traverse checking', () => {
  it('with SeChangeNotifyPrivilege only the target decides; without it every directory on the way must grant traverse', () => {
    const fs = volume();
    fs.adminMkdirs('C:\\closed', ALICE, { aces: [ace('allow', ALICE, FILE_ALL_ACCESS, 3)], protected: true });
    fs.adminWriteFile('C:\\closed\\open.txt', 'x', ALICE, { aces: [ace('allow', BOB, FILE_GENERIC_READ)], protected: true });
    assert.equal(fs.readFile(who(BOB), 'C:\\closed\\open.txt'), 'x');
    assert.throws(() => fs.readFile(who(BOB, []), 'C:\\closed\\open.txt'), /traverse C:\\closed/);
  });
});

describe('reparse points and links', () => {
  it('a path through a junction reaches (and is checked against) the target', () => {
    const fs = volume();
    fs.mkdir(who(ALICE), 'C:\\real');
    fs.writeFile(who(ALICE), 'C:\\real\\f', 'x');
    fs.createJunction(who(ALICE), 'C:\\j', 'C:\\real');
    assert.equal(fs.readFile(who(ALICE), 'C:\\j\\f'), 'x');
    assert.equal(fs.realPath('C:\\j\\f'), 'C:\\real\\f');
    fs.delete(who(ALICE), 'C:\\j');
    assert.equal(fs.stat('C:\\real\\f')?.kind, 'file', 'deleting a junction leaves its target');
  });

  it('a junction needs an empty directory; a loop of reparse points stops', () => {
    const fs = volume();
    fs.mkdir(who(ALICE), 'C:\\full');
    fs.writeFile(who(ALICE), 'C:\\full\\f', 'x');
    assert.throws(() => fs.createJunction(who(ALICE), 'C:\\full', 'C:\\x'), /empty directory/);
    fs.createJunction(who(ALICE), 'C:\\a', 'C:\\b');
    fs.createJunction(who(ALICE), 'C:\\b', 'C:\\a');
    assert.throws(() => fs.readFile(who(ALICE), 'C:\\a\\f'), /CANT_RESOLVE_FILENAME/);
  });

  it('symbolic links need SeCreateSymbolicLinkPrivilege unless developer mode is on', () => {
    assert.throws(() => volume().createSymlink(who(ALICE), 'C:\\s', 'C:\\t', 'file'), /PRIVILEGE_NOT_HELD/);
    assert.doesNotThrow(() => volume({ unprivilegedSymlinks: true }).createSymlink(who(ALICE), 'C:\\s', 'C:\\t', 'file'));
    assert.doesNotThrow(() => volume().createSymlink(who(ALICE, [['SeCreateSymbolicLinkPrivilege', true]]), 'C:\\s', 'C:\\t', 'file'));
  });

  it('hard links are names of one file: one SD, which propagation through any name rewrites', () => {
    const fs = volume();
    fs.adminMkdirs('C:\\private', ALICE, { aces: [ace('allow', ALICE, FILE_ALL_ACCESS, 3)], protected: true });
    fs.adminWriteFile('C:\\private\\secret.txt', 's', ALICE);
    fs.adminMkdirs('C:\\shared', ALICE);
    fs.adminHardLink('C:\\shared\\alias.txt', 'C:\\private\\secret.txt');
    assert.throws(() => fs.readFile(who(BOB), 'C:\\shared\\alias.txt'), /ACCESS_DENIED/, 'the link carries the file\'s own DACL');
    fs.setExplicitAndPropagate(who(ALICE), 'C:\\shared', [ace('allow', BOB, FILE_ALL_ACCESS, 3)]);
    assert.doesNotThrow(() => fs.writeFile(who(BOB), 'C:\\private\\secret.txt', 'pwned'), 'propagation over a hard-link name changed the file itself');
  });

  it('a protected DACL stops propagation (icacls /inheritance:d)', () => {
    const fs = volume();
    fs.adminMkdirs('C:\\d', ALICE);
    fs.adminWriteFile('C:\\d\\f', 'x', ALICE);
    fs.protectInheritance(who(ALICE), 'C:\\d\\f');
    fs.setExplicitAndPropagate(who(ALICE), 'C:\\d', [ace('allow', BOB, FILE_ALL_ACCESS, 3)]);
    assert.throws(() => fs.writeFile(who(BOB), 'C:\\d\\f', 'x'), /ACCESS_DENIED/);
    assert.doesNotThrow(() => fs.writeFile(who(BOB), 'C:\\d\\g', 'x'));
  });
});

describe('create, delete, rename', () => {
  const dir = (fs: FileSystem, path: string, aces: string) => fs.adminMkdirs(path, ALICE, { aces: parseDacl(aces).dacl, protected: true });

  it('creating needs FILE_ADD_FILE / FILE_ADD_SUBDIRECTORY on the parent; the new object inherits', () => {
    const fs = volume();
    dir(fs, 'C:\\p', `D:P(A;OICI;FA;;;${ALICE})(A;OICI;0x1200a9;;;${BOB})(A;;0x2;;;${BOB})`);
    fs.writeFile(who(BOB), 'C:\\p\\bob.txt', 'x');
    assert.throws(() => fs.mkdir(who(BOB), 'C:\\p\\d'), /ACCESS_DENIED/);
    const sd = fs.nodeAt('C:\\p\\bob.txt')!.sd;
    assert.equal(sd.owner, BOB);
    assert.deepEqual(sd.dacl!.map((a) => `${a.sid}:${a.mask.toString(16)}`), [`${ALICE}:1f01ff`, `${BOB}:1200a9`]);
  });

  it('DELETE on the object or FILE_DELETE_CHILD on the parent: either suffices', () => {
    const fs = volume();
    dir(fs, 'C:\\p', `D:P(A;;${'0x' + (READ_EXECUTE | FILE_DELETE_CHILD).toString(16)};;;${BOB})(A;OICI;FA;;;${ALICE})`);
    fs.adminWriteFile('C:\\p\\f', 'x', ALICE, { aces: [ace('deny', BOB, DELETE), ace('allow', ALICE, FILE_ALL_ACCESS)], protected: true });
    assert.doesNotThrow(() => fs.delete(who(BOB), 'C:\\p\\f'), 'the parent\'s FILE_DELETE_CHILD overrides the child\'s deny');
    const fs2 = volume();
    dir(fs2, 'C:\\p', `D:P(A;OICI;FA;;;${ALICE})(A;OICI;0x1200a9;;;${BOB})`);
    fs2.adminWriteFile('C:\\p\\f', 'x', ALICE, { aces: [ace('allow', BOB, DELETE)], protected: false });
    assert.doesNotThrow(() => fs2.delete(who(BOB), 'C:\\p\\f'));
    fs2.adminWriteFile('C:\\p\\g', 'x', ALICE);
    assert.throws(() => fs2.delete(who(BOB), 'C:\\p\\g'), /ACCESS_DENIED/);
  });

  it('rename needs DELETE on the source, add rights on the target directory, DELETE on a replaced file; the SD moves along', () => {
    const fs = volume();
    dir(fs, 'C:\\src', `D:P(A;OICI;FA;;;${ALICE})(A;OICI;${'0x' + MODIFY.toString(16)};;;${BOB})`);
    dir(fs, 'C:\\ro', `D:P(A;OICI;FA;;;${ALICE})(A;OICI;0x1200a9;;;${BOB})`);
    fs.writeFile(who(BOB), 'C:\\src\\a', 'x');
    assert.throws(() => fs.rename(who(BOB), 'C:\\src\\a', 'C:\\ro\\a'), /ACCESS_DENIED/);
    fs.rename(who(BOB), 'C:\\src\\a', 'C:\\src\\b');
    fs.rename(who(ALICE), 'C:\\src\\b', 'C:\\ro\\b');
    // The moved file kept the DACL it was created with (MODIFY for BOB), unlike a new file in C:\ro.
    assert.doesNotThrow(() => fs.writeFile(who(BOB), 'C:\\ro\\b', 'y'));
    assert.throws(() => fs.writeFile(who(BOB), 'C:\\ro\\new', 'y'), /ACCESS_DENIED/);
    assert.throws(() => fs.rename(who(BOB), 'C:\\src\\missing', 'C:\\src\\x'), /FILE_NOT_FOUND/);
  });
});

describe('inheritance (ACE Inheritance Rules)', () => {
  const A = ALICE;
  it('OI: files get it; directories get an inherit-only copy, or nothing with NP', () => {
    assert.deepEqual(inheritedAces([ace('allow', A, MODIFY, 0x1)], false, A).map((a) => a.flags), [0x10]);
    assert.deepEqual(inheritedAces([ace('allow', A, MODIFY, 0x1)], true, A).map((a) => a.flags), [0x19]);
    assert.deepEqual(inheritedAces([ace('allow', A, MODIFY, 0x5)], true, A), []);
  });

  it('CI: files get nothing; directories get it, still inheritable unless NP', () => {
    assert.deepEqual(inheritedAces([ace('allow', A, MODIFY, 0x2)], false, A), []);
    assert.deepEqual(inheritedAces([ace('allow', A, MODIFY, 0x2)], true, A).map((a) => a.flags), [0x12]);
    assert.deepEqual(inheritedAces([ace('allow', A, MODIFY, 0x6)], true, A).map((a) => a.flags), [0x10]);
  });

  it('generic rights and CREATOR OWNER split into a mapped effective ACE and an inherit-only original', () => {
    const out = inheritedAces([ace('allow', SID.CreatorOwner, GENERIC_ALL, 0xb)], true, BOB);
    assert.deepEqual(out.map((a) => [a.sid, a.mask, a.flags]), [[BOB, FILE_ALL_ACCESS, 0x10], [SID.CreatorOwner, GENERIC_ALL, 0x1b]]);
    const file = inheritedAces([ace('allow', SID.CreatorOwner, GENERIC_ALL, 0xb)], false, BOB);
    assert.deepEqual(file.map((a) => [a.sid, a.mask]), [[BOB, FILE_ALL_ACCESS]]);
  });

  it('explicit ACEs come first, deny before allow (canonical order)', () => {
    assert.equal(isCanonical([ace('deny', A, 1), ace('allow', A, 1), ace('deny', A, 1, 0x10)]), true);
    assert.equal(isCanonical([ace('allow', A, 1), ace('deny', A, 1)]), false);
    assert.equal(isCanonical([ace('allow', A, 1, 0x10), ace('allow', A, 1)]), false);
    assert.equal(FILE_GENERIC_READ, 0x120089);
  });
});
