// Access-mask constants for files and directories, and the file generic mapping.
// Values: [MS] "File Access Rights Constants" and "File Security and Access Rights"
// (learn.microsoft.com/windows/win32/fileio/file-access-rights-constants), winnt.h.
// Shared by the plan (pure), the model and the enforcer: they must agree bit for bit.

export const FILE_READ_DATA = 0x1;
/** Same bit on a directory: list it. */
export const FILE_LIST_DIRECTORY = 0x1;
export const FILE_WRITE_DATA = 0x2;
/** Same bit on a directory: create a file in it. */
export const FILE_ADD_FILE = 0x2;
export const FILE_APPEND_DATA = 0x4;
/** Same bit on a directory: create a subdirectory in it. */
export const FILE_ADD_SUBDIRECTORY = 0x4;
export const FILE_READ_EA = 0x8;
export const FILE_WRITE_EA = 0x10;
export const FILE_EXECUTE = 0x20;
/** Same bit on a directory: traverse it (ignored under SeChangeNotifyPrivilege). */
export const FILE_TRAVERSE = 0x20;
/** Directory: delete any child, whatever the child's own DACL says. */
export const FILE_DELETE_CHILD = 0x40;
export const FILE_READ_ATTRIBUTES = 0x80;
export const FILE_WRITE_ATTRIBUTES = 0x100;

// Standard rights ([MS] "Standard Access Rights").
export const DELETE = 0x10000;
export const READ_CONTROL = 0x20000;
export const WRITE_DAC = 0x40000;
export const WRITE_OWNER = 0x80000;
export const SYNCHRONIZE = 0x100000;
export const STANDARD_RIGHTS_REQUIRED = 0xf0000;

export const ACCESS_SYSTEM_SECURITY = 0x1000000;
export const MAXIMUM_ALLOWED = 0x2000000;

// Generic rights ([MS] "Generic Access Rights"): mapped through the object's GENERIC_MAPPING before
// any ACE is compared.
export const GENERIC_ALL = 0x10000000;
export const GENERIC_EXECUTE = 0x20000000;
export const GENERIC_WRITE = 0x40000000;
export const GENERIC_READ = 0x80000000;

export const FILE_GENERIC_READ =
  READ_CONTROL | FILE_READ_DATA | FILE_READ_ATTRIBUTES | FILE_READ_EA | SYNCHRONIZE; // 0x120089
export const FILE_GENERIC_WRITE =
  READ_CONTROL | FILE_WRITE_DATA | FILE_APPEND_DATA | FILE_WRITE_ATTRIBUTES | FILE_WRITE_EA | SYNCHRONIZE; // 0x120116
export const FILE_GENERIC_EXECUTE = READ_CONTROL | FILE_READ_ATTRIBUTES | FILE_EXECUTE | SYNCHRONIZE; // 0x1200a0
export const FILE_ALL_ACCESS = STANDARD_RIGHTS_REQUIRED | SYNCHRONIZE | 0x1ff; // 0x1f01ff

export interface GenericMapping {
  read: number;
  write: number;
  execute: number;
  all: number;
}

/** [MS] "File Security and Access Rights": the generic mapping of file objects. */
export const FILE_GENERIC_MAPPING: GenericMapping = {
  read: FILE_GENERIC_READ,
  write: FILE_GENERIC_WRITE,
  execute: FILE_GENERIC_EXECUTE,
  all: FILE_ALL_ACCESS,
};

/** MapGenericMask: replace generic bits by the object-specific rights they stand for. */
export function mapGenericMask(mask: number, mapping: GenericMapping): number {
  let mapped = mask & ~(GENERIC_ALL | GENERIC_EXECUTE | GENERIC_WRITE | GENERIC_READ);
  if (mask & GENERIC_READ) mapped |= mapping.read;
  if (mask & GENERIC_WRITE) mapped |= mapping.write;
  if (mask & GENERIC_EXECUTE) mapped |= mapping.execute;
  if (mask & GENERIC_ALL) mapped |= mapping.all;
  return mapped >>> 0;
}

// Masks cordon uses. Named here so the plan, the model tests and the printed plan agree.

/** Read and execute (icacls `RX`). */
export const READ_EXECUTE = FILE_GENERIC_READ | FILE_GENERIC_EXECUTE; // 0x1200a9

/**
 * What a writable root grants the sandbox: read, write, execute and DELETE (icacls `M`, "modify").
 * FILE_DELETE_CHILD is withheld on purpose: with it a directory lets its children be deleted even
 * when the child's own DACL denies DELETE ([MS IFS] "Delete on close": either right suffices).
 */
export const MODIFY = READ_EXECUTE | FILE_GENERIC_WRITE | DELETE; // 0x1301bf

/**
 * Denied on protected paths. Every right that changes the object, its name or its DACL, and
 * nothing that reads: READ_CONTROL and SYNCHRONIZE are left out because this deny is matched in
 * the *normal* pass too (it names the sandbox group), and denying SYNCHRONIZE would break reads
 * ([MS] File Security: "denying GENERIC_WRITE ... also denies SYNCHRONIZE").
 */
export const PROTECT_DENY =
  FILE_WRITE_DATA | FILE_APPEND_DATA | FILE_WRITE_EA | FILE_WRITE_ATTRIBUTES | FILE_DELETE_CHILD |
  DELETE | WRITE_DAC | WRITE_OWNER; // 0xd0156

/** Denied on secrets: reading contents, EAs and listing/executing; plus every change. */
export const SECRET_DENY = FILE_READ_DATA | FILE_READ_EA | FILE_EXECUTE | PROTECT_DENY; // 0xd017f

/** Denied on broad-writable directories outside the sandbox's roots ("ambient" denies). */
export const AMBIENT_DENY = PROTECT_DENY;

const RIGHT_NAMES: readonly [number, string][] = [
  [GENERIC_READ, 'GR'], [GENERIC_WRITE, 'GW'], [GENERIC_EXECUTE, 'GE'], [GENERIC_ALL, 'GA'],
  [FILE_READ_DATA, 'RD'], [FILE_WRITE_DATA, 'WD'], [FILE_APPEND_DATA, 'AD'], [FILE_READ_EA, 'REA'],
  [FILE_WRITE_EA, 'WEA'], [FILE_EXECUTE, 'X'], [FILE_DELETE_CHILD, 'DC'], [FILE_READ_ATTRIBUTES, 'RA'],
  [FILE_WRITE_ATTRIBUTES, 'WA'], [DELETE, 'DE'], [READ_CONTROL, 'RC'], [WRITE_DAC, 'WDAC'],
  [WRITE_OWNER, 'WO'], [SYNCHRONIZE, 'S'],
];

/**
 * The icacls spelling of a mask (`(RD,WD,…)`), used by the enforcer and the printed plan.
 * icacls names: `icacls /?` "specific rights" list.
 */
export function icaclsRights(mask: number): string {
  if (mask === FILE_ALL_ACCESS) return 'F';
  const parts: string[] = [];
  let rest = mask >>> 0;
  for (const [bit, name] of RIGHT_NAMES) {
    if ((rest & bit) >>> 0 === bit >>> 0) {
      parts.push(name);
      rest = (rest & ~bit) >>> 0;
    }
  }
  if (rest !== 0) throw new Error(`mask 0x${mask.toString(16)} has bits icacls cannot name`);
  return parts.join(',');
}

export function hex(mask: number): string {
  return '0x' + (mask >>> 0).toString(16);
}
