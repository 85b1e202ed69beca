// The access-check rules of the model, one documented rule per test, each with a case that would
// fail if the rule were implemented the other way.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { type Ace, type SecurityDescriptor, ace, parseSddl } from '../../../src/windows/acl.js';
import { accessCheck, writeRestrictedMask } from '../../../src/windows/model/access-check.js';
import { type Token, createRestrictedToken } from '../../../src/windows/model/token.js';
import {
  DELETE, FILE_ALL_ACCESS, FILE_DELETE_CHILD, FILE_GENERIC_READ, FILE_GENERIC_WRITE, FILE_READ_DATA, FILE_WRITE_DATA,
  GENERIC_READ, GENERIC_WRITE, READ_CONTROL, SYNCHRONIZE, WRITE_DAC, WRITE_OWNER,
} from '../../../src/windows/rights.js';
import { SID } from '../../../src/windows/sids.js';

const ALICE = 'S-1-5-21-1-2-3-1001';
const BOB = 'S-1-5-21-1-2-3-1002';
const TEAM = 'S-1-5-21-1-2-3-2001';
const CAP = 'S-1-5-21-9-9-9-9';

function token(extra: Partial<Token> = {}): Token {
  return {
    user: ALICE, userDenyOnly: false,
    groups: [{ sid: SID.Everyone, enabled: true, denyOnly: false }, { sid: TEAM, enabled: true, denyOnly: false }],
    restrictingSids: [], writeRestricted: false, privileges: new Map([['SeChangeNotifyPrivilege', true]]),
    defaultOwner: ALICE, defaultDacl: null, label: 'alice', ...extra,
  };
}

const sd = (dacl: Ace[] | null, owner = BOB): SecurityDescriptor => ({ owner, dacl, daclProtected: false });
const R1 = { writeRestrictedReading: 'generic-write' as const };
const R2 = { writeRestrictedReading: 'generic-write-and-standard' as const };
const granted = (t: Token, s: SecurityDescriptor, mask: number, o: { writeRestrictedReading: 'generic-write' | 'generic-write-and-standard' } = R1) => accessCheck(t, s, mask, o).granted;

describe('DACL evaluation (How AccessCheck Works)', () => {
  it('a NULL DACL grants everything, an empty DACL nothing', () => {
    assert.equal(granted(token(), sd(null), FILE_ALL_ACCESS), true);
    assert.equal(granted(token(), sd([]), FILE_READ_DATA), false);
  });

  it('ACEs are read in stored order: the first decision for a bit wins', () => {
    const denyFirst = sd([ace('deny', TEAM, FILE_WRITE_DATA), ace('allow', ALICE, FILE_ALL_ACCESS)]);
    const allowFirst = sd([ace('allow', ALICE, FILE_ALL_ACCESS), ace('deny', TEAM, FILE_WRITE_DATA)]);
    assert.equal(granted(token(), denyFirst, FILE_WRITE_DATA), false);
    assert.equal(granted(token(), allowFirst, FILE_WRITE_DATA), true);
  });

  it('a deny only matters for bits still undecided', () => {
    const s = sd([ace('allow', ALICE, FILE_READ_DATA), ace('deny', TEAM, FILE_READ_DATA | FILE_WRITE_DATA), ace('allow', TEAM, FILE_WRITE_DATA)]);
    assert.equal(granted(token(), s, FILE_READ_DATA), true);
    assert.equal(granted(token(), s, FILE_READ_DATA | FILE_WRITE_DATA), false);
  });

  it('bits no ACE grants are denied', () => {
    assert.equal(granted(token(), sd([ace('allow', ALICE, FILE_READ_DATA)]), FILE_READ_DATA | FILE_WRITE_DATA), false);
  });

  it('deny-only groups match deny ACEs but not allow ACEs', () => {
    const t = token({ groups: [{ sid: TEAM, enabled: false, denyOnly: true }] });
    assert.equal(granted(t, sd([ace('allow', TEAM, FILE_READ_DATA)]), FILE_READ_DATA), false);
    assert.equal(granted(t, sd([ace('deny', TEAM, FILE_READ_DATA), ace('allow', ALICE, FILE_READ_DATA)]), FILE_READ_DATA), false);
    assert.equal(granted(token(), sd([ace('allow', TEAM, FILE_READ_DATA)]), FILE_READ_DATA), true);
  });

  it('inherit-only ACEs do not apply to the object itself', () => {
    assert.equal(granted(token(), sd([ace('allow', ALICE, FILE_ALL_ACCESS, 0x8 | 0x3)]), FILE_READ_DATA), false);
  });

  it('generic rights are mapped, in ACEs and in requests (file generic mapping)', () => {
    assert.equal(granted(token(), sd([ace('allow', ALICE, GENERIC_READ)]), FILE_GENERIC_READ), true);
    assert.equal(granted(token(), sd([ace('allow', ALICE, FILE_GENERIC_WRITE)]), GENERIC_WRITE), true);
    assert.equal(granted(token(), sd([ace('allow', ALICE, FILE_GENERIC_READ)]), GENERIC_WRITE), false);
  });

  it('denying FILE_GENERIC_WRITE also denies reads: it carries SYNCHRONIZE and READ_CONTROL', () => {
    const s = sd([ace('deny', ALICE, FILE_GENERIC_WRITE), ace('allow', ALICE, FILE_ALL_ACCESS)]);
    assert.equal(granted(token(), s, FILE_GENERIC_READ), false);
    assert.equal(granted(token(), s, FILE_READ_DATA), true);
  });
});

describe('ownership', () => {
  it('the owner gets READ_CONTROL and WRITE_DAC whatever the DACL says (Owner of a New Object)', () => {
    assert.equal(granted(token(), sd([], ALICE), WRITE_DAC | READ_CONTROL), true);
    assert.equal(granted(token(), sd([], BOB), WRITE_DAC), false);
    assert.equal(granted(token(), sd([], ALICE), WRITE_OWNER), false);
  });

  it('an OWNER RIGHTS ACE replaces those implicit rights', () => {
    const onlyRead = sd([ace('allow', SID.OwnerRights, READ_CONTROL)], ALICE);
    assert.equal(granted(token(), onlyRead, READ_CONTROL), true);
    assert.equal(granted(token(), onlyRead, WRITE_DAC), false);
    // An inherit-only OWNER RIGHTS ACE does not count for the object itself.
    assert.equal(granted(token(), sd([ace('allow', SID.OwnerRights, READ_CONTROL, 0x8 | 0x3)], ALICE), WRITE_DAC), true);
  });

  it('SeTakeOwnershipPrivilege grants WRITE_OWNER regardless of the DACL', () => {
    const t = token({ privileges: new Map([['SeTakeOwnershipPrivilege', true]]) });
    assert.equal(granted(t, sd([]), WRITE_OWNER), true);
    assert.equal(granted(token({ privileges: new Map([['SeTakeOwnershipPrivilege', false]]) }), sd([]), WRITE_OWNER), false);
  });
});

describe('restricted tokens (two passes)', () => {
  const everyoneWrites = sd([ace('allow', SID.Everyone, FILE_ALL_ACCESS)]);

  it('a restricted token needs both passes for any access', () => {
    const t = token({ restrictingSids: [CAP] });
    assert.equal(granted(t, everyoneWrites, FILE_READ_DATA), false);
    assert.equal(granted(t, sd([ace('allow', ALICE, FILE_ALL_ACCESS), ace('allow', CAP, FILE_READ_DATA)]), FILE_READ_DATA), true);
  });

  it('a write-restricted token skips the second pass for reads', () => {
    const t = token({ restrictingSids: [CAP], writeRestricted: true });
    assert.equal(granted(t, everyoneWrites, FILE_GENERIC_READ), true);
    assert.equal(granted(t, everyoneWrites, FILE_WRITE_DATA), false);
    assert.equal(granted(t, sd([ace('allow', SID.Everyone, FILE_ALL_ACCESS), ace('allow', CAP, FILE_WRITE_DATA)]), FILE_WRITE_DATA), true);
  });

  it('when the second pass runs it checks the whole request, reads included', () => {
    const t = token({ restrictingSids: [CAP], writeRestricted: true });
    const capWritesOnly = sd([ace('allow', SID.Everyone, FILE_ALL_ACCESS), ace('allow', CAP, FILE_WRITE_DATA)]);
    assert.equal(granted(t, capWritesOnly, FILE_WRITE_DATA), true);
    assert.equal(granted(t, capWritesOnly, FILE_WRITE_DATA | FILE_READ_DATA), false);
  });

  it('deny ACEs for a restricting SID count in the second pass', () => {
    const t = token({ restrictingSids: [CAP], writeRestricted: true });
    const s = sd([ace('deny', CAP, FILE_WRITE_DATA), ace('allow', SID.Everyone, FILE_ALL_ACCESS), ace('allow', CAP, FILE_ALL_ACCESS)]);
    assert.equal(granted(t, s, FILE_WRITE_DATA), false);
    assert.equal(granted(t, s, FILE_READ_DATA), true);
  });

  it('the WRITE_RESTRICTED switch: DELETE, WRITE_DAC, WRITE_OWNER and FILE_DELETE_CHILD skip or meet the second pass', () => {
    const t = token({ restrictingSids: [CAP], writeRestricted: true, privileges: new Map() });
    const userOwnsIt = sd([ace('allow', ALICE, FILE_ALL_ACCESS)], ALICE);
    for (const right of [DELETE, WRITE_DAC, FILE_DELETE_CHILD]) {
      assert.equal(granted(t, userOwnsIt, right, R1), true, `0x${right.toString(16)} under generic-write`);
      assert.equal(granted(t, userOwnsIt, right, R2), false, `0x${right.toString(16)} under generic-write-and-standard`);
    }
    assert.equal(writeRestrictedMask('generic-write'), 0x116);
    assert.equal(writeRestrictedMask('generic-write-and-standard'), 0xd0156);
  });

  it("owner rights count in the second pass only if the owner is a restricting SID", () => {
    const t = token({ restrictingSids: [CAP] });
    assert.equal(granted(t, sd([], ALICE), WRITE_DAC), false);
    assert.equal(granted(token({ restrictingSids: [CAP, ALICE] }), sd([], ALICE), WRITE_DAC), true);
  });
});

describe('CreateRestrictedToken', () => {
  const base = token({ privileges: new Map([['SeChangeNotifyPrivilege', true], ['SeShutdownPrivilege', false]]) });

  it('SidsToDisable become deny-only, including the user', () => {
    const t = createRestrictedToken(base, { sidsToDisable: [TEAM, ALICE] });
    assert.equal(granted(t, sd([ace('allow', TEAM, FILE_READ_DATA)]), FILE_READ_DATA), false);
    assert.equal(granted(t, sd([ace('allow', ALICE, FILE_READ_DATA)]), FILE_READ_DATA), false);
    assert.equal(granted(t, sd([ace('allow', SID.Everyone, FILE_READ_DATA)]), FILE_READ_DATA), true);
  });

  it('DISABLE_MAX_PRIVILEGE keeps only SeChangeNotifyPrivilege', () => {
    const t = createRestrictedToken(base, { disableMaxPrivilege: true });
    assert.deepEqual([...t.privileges.keys()], ['SeChangeNotifyPrivilege']);
    assert.deepEqual([...createRestrictedToken(base, {}).privileges.keys()].sort(), ['SeChangeNotifyPrivilege', 'SeShutdownPrivilege']);
  });

  it('restricting an already restricted token intersects the lists, and write-restricted stays', () => {
    const once = createRestrictedToken(base, { restrictingSids: [CAP, TEAM], writeRestricted: true });
    const twice = createRestrictedToken(once, { restrictingSids: [CAP, SID.Everyone] });
    assert.deepEqual(twice.restrictingSids, [CAP]);
    assert.equal(twice.writeRestricted, true);
  });

  it('logon SIDs can be made deny-only as a class', () => {
    const withLogon = token({ groups: [{ sid: 'S-1-5-5-0-99', enabled: true, denyOnly: false, logonId: true }] });
    const t = createRestrictedToken(withLogon, { disableLogonSids: true });
    assert.equal(granted(t, sd([ace('allow', 'S-1-5-5-0-99', FILE_READ_DATA)]), FILE_READ_DATA), false);
  });
});

describe('SDDL round trip', () => {
  it('parses and prints what cordon uses', () => {
    const s = parseSddl('O:BAD:P(D;OICI;0xd0156;;;S-1-5-21-9-9-9-9)(A;OICI;FA;;;SY)(A;;0x1200a9;;;BU)(A;OICIIO;GA;;;CO)');
    assert.equal(s.owner, SID.Administrators);
    assert.equal(s.daclProtected, true);
    assert.equal(s.dacl!.length, 4);
    assert.equal(s.dacl![0]!.type, 'deny');
    assert.equal(s.dacl![3]!.flags, 0xb);
    assert.throws(() => parseSddl('O:BAD:(A;;ZZ;;;SY)'), /unknown right 'ZZ'/);
    assert.equal(SYNCHRONIZE, 0x100000);
  });
});
