// A small NTFS namespace with the Win32 path rules in front of it, every operation access-checked.
// Sources:
// - [MS] "Naming Files, Paths, and Namespaces": case-insensitive names, `\\?\` disables
//   normalisation, streams `file:stream:$DATA`, 8.3 short names, no trailing dot/space in names.
// - J. Kuhne, ".NET Path Normalization" / "Path Format Overview" (learn.microsoft.com/dotnet/standard/io/file-path-formats):
//   `/` becomes `\`, `.`/`..` are collapsed, trailing periods and spaces are trimmed from segments,
//   none of it under `\\?\`.
// - [MS-FSA] 2.1.5.1.2.1 "Algorithm to Check Access to an Existing File": the file's SD decides,
//   and DELETE may instead come from FILE_DELETE_CHILD on the parent; [MS IFS] "Delete on close":
//   "Either permission is sufficient".
// - [MS] "File Security and Access Rights": streams share the file's SD; creating a file needs
//   FILE_ADD_FILE and a directory FILE_ADD_SUBDIRECTORY on the parent; with SeChangeNotifyPrivilege
//   (bypass traverse) the parent directories are not checked on open.
// - [MS IFS] "Rename and Hard Link Processing": rename needs DELETE on the source and the right to
//   add an entry to the target directory, and DELETE on a replaced target; a file moved within a
//   volume keeps its SD (no re-inheritance).
// - [MS-FSA] 2.1.5.10.37 FSCTL_SET_REPARSE_POINT: the handle needs FILE_WRITE_DATA or
//   FILE_WRITE_ATTRIBUTES; a junction must be an empty directory. [MS] CreateSymbolicLink:
//   SeCreateSymbolicLinkPrivilege unless developer mode allows unprivileged creation.
// - [MS] "Reparse Points": a path walk follows junctions and symbolic links (at most 63 reparses)
//   unless FILE_FLAG_OPEN_REPARSE_POINT opens the link itself, which delete and rename do.
// - Hard links: several names, one file object, one SD ([MS] "Hard Links and Junctions").

import { type Ace, type SecurityDescriptor, canonicalExplicit, isInherited } from '../acl.js';
import {
  DELETE, FILE_ADD_FILE, FILE_ADD_SUBDIRECTORY, FILE_DELETE_CHILD, FILE_READ_DATA, FILE_WRITE_ATTRIBUTES,
  FILE_WRITE_DATA, FILE_APPEND_DATA, FILE_TRAVERSE, READ_CONTROL, WRITE_DAC, WRITE_OWNER,
} from '../rights.js';
import { type AccessDecision, type WriteRestrictedReading, accessCheck } from './access-check.js';
import { daclForNewObject, repropagate } from './inheritance.js';
import { SE_CHANGE_NOTIFY, SE_CREATE_SYMBOLIC_LINK, SE_RESTORE, type Token, privilegeEnabled } from './token.js';

export type NodeKind = 'file' | 'dir';

export interface FsNode {
  id: number;
  kind: NodeKind;
  sd: SecurityDescriptor;
  data: string;
  /** Named data streams, keyed by upper-cased name. */
  streams: Map<string, { name: string; data: string }>;
  reparse?: { tag: 'junction' | 'symlink'; target: string };
  /** Directory entries keyed by upper-cased long name (or exact name in a case-sensitive dir). */
  children?: Map<string, Dirent>;
  /** Per-directory case sensitivity (fsutil file setCaseSensitiveInfo). */
  caseSensitive?: boolean;
  /** Names (directory entries) that refer to this object. */
  links: Set<Dirent>;
}

export interface Dirent {
  name: string;
  shortName?: string;
  node: FsNode;
  parent: FsNode;
}

export class WinError extends Error {
  constructor(readonly code: string, message: string, readonly decision?: AccessDecision) {
    super(`${code}: ${message}`);
  }
}

export interface VolumeOptions {
  /** 8.3 short-name generation (on by default on the system volume). */
  shortNames: boolean;
  /** Developer mode: unprivileged symbolic links. */
  unprivilegedSymlinks: boolean;
}

interface ParsedPath {
  drive: string;
  components: string[];
  stream?: string;
  literal: boolean;
}

const MAX_REPARSE = 63;

function keyOf(dir: FsNode, name: string): string {
  return dir.caseSensitive ? name : name.toUpperCase();
}

/** Trim what Win32 normalisation trims from a segment: trailing periods and spaces. */
function trimSegment(segment: string): string {
  return segment.replace(/[. ]+$/, '');
}

export function parsePath(input: string): ParsedPath {
  let literal = false;
  let rest = input;
  if (rest.startsWith('\\\\?\\')) {
    literal = true;
    rest = rest.slice(4);
  } else if (rest.startsWith('\\\\') || rest.startsWith('//')) {
    throw new WinError('ERROR_BAD_NETPATH', `UNC and device paths are not modelled: ${input}`);
  }
  if (!literal) rest = rest.replace(/\//g, '\\');
  const m = /^([A-Za-z]):(\\.*)?$/.exec(rest);
  if (!m) throw new WinError('ERROR_INVALID_NAME', `not an absolute drive path: ${input}`);
  const drive = m[1]!.toUpperCase();
  const raw = (m[2] ?? '\\').split('\\').filter((s) => s.length > 0);
  const components: string[] = [];
  for (const segment of raw) {
    if (literal) {
      components.push(segment);
      continue;
    }
    if (segment === '.') continue;
    if (segment === '..') {
      components.pop();
      continue;
    }
    const trimmed = trimSegment(segment);
    if (trimmed.length === 0) continue;
    components.push(trimmed);
  }
  let stream: string | undefined;
  const last = components[components.length - 1];
  if (last !== undefined && last.includes(':')) {
    const [name, streamName, type] = last.split(':');
    if (type !== undefined && type.toUpperCase() !== '$DATA' && type.toUpperCase() !== '$INDEX_ALLOCATION') {
      throw new WinError('ERROR_INVALID_NAME', `unknown stream type ${type}`);
    }
    components[components.length - 1] = literal ? name! : trimSegment(name!);
    if (streamName && streamName.length > 0) stream = streamName;
  }
  for (const c of components.slice(0, -1)) {
    if (c.includes(':')) throw new WinError('ERROR_INVALID_NAME', `stream syntax in a directory segment: ${input}`);
  }
  return { drive, components, ...(stream !== undefined ? { stream } : {}), literal };
}

function formatPath(drive: string, components: readonly string[]): string {
  return `${drive}:\\${components.join('\\')}`;
}

function joinPath(dir: string, name: string): string {
  return dir.endsWith('\\') ? dir + name : `${dir}\\${name}`;
}

/** A simplified 8.3 alias in the shape Windows generates: `GIT~1`, `CONFIG~1.WOR`. */
function shortNameFor(name: string, taken: Set<string>): string | undefined {
  const upper = name.toUpperCase();
  const isValid83 = /^[A-Z0-9_$~!#%&'()@^`{}-]{1,8}(\.[A-Z0-9_$~!#%&'()@^`{}-]{1,3})?$/.test(upper);
  if (isValid83) return undefined;
  const stripped = upper.replace(/^\.+/, '');
  const lastDot = stripped.lastIndexOf('.');
  const basePart = (lastDot > 0 ? stripped.slice(0, lastDot) : stripped).replace(/[^A-Z0-9_$~!#%&'()@^`{}-]/g, '');
  const extPart = (lastDot > 0 ? stripped.slice(lastDot + 1) : '').replace(/[^A-Z0-9_$~!#%&'()@^`{}-]/g, '').slice(0, 3);
  for (let n = 1; n < 10; n += 1) {
    const candidate = `${basePart.slice(0, 6) || 'X'}~${n}${extPart ? '.' + extPart : ''}`;
    if (!taken.has(candidate)) return candidate;
  }
  return undefined;
}

export interface Resolved {
  /** The directory that holds (or would hold) the final name. */
  parent: FsNode;
  parentPath: string;
  name: string;
  dirent?: Dirent;
  stream?: string;
  /** The canonical path of the final name (after following reparse points). */
  path: string;
}

export interface FileSystemOptions {
  writeRestrictedReading: WriteRestrictedReading;
}

export class FileSystem {
  private nextId = 1;
  readonly volumes = new Map<string, { root: FsNode; options: VolumeOptions }>();

  constructor(public options: FileSystemOptions) {}

  // --- construction (administrative: no access checks) -------------------------------------------

  addVolume(drive: string, rootSd: SecurityDescriptor, options: Partial<VolumeOptions> = {}): void {
    const root = this.newNode('dir', rootSd);
    this.volumes.set(drive.toUpperCase(), { root, options: { shortNames: false, unprivilegedSymlinks: false, ...options } });
  }

  private newNode(kind: NodeKind, sd: SecurityDescriptor): FsNode {
    const node: FsNode = { id: this.nextId++, kind, sd, data: '', streams: new Map(), links: new Set() };
    if (kind === 'dir') node.children = new Map();
    return node;
  }

  private volumeOf(drive: string) {
    const volume = this.volumes.get(drive);
    if (!volume) throw new WinError('ERROR_PATH_NOT_FOUND', `no volume ${drive}:`);
    return volume;
  }

  private findChild(dir: FsNode, name: string): Dirent | undefined {
    const direct = dir.children!.get(keyOf(dir, name));
    if (direct) return direct;
    if (dir.caseSensitive) return undefined;
    const upper = name.toUpperCase();
    for (const e of dir.children!.values()) if (e.shortName === upper) return e;
    return undefined;
  }

  private link(parent: FsNode, name: string, node: FsNode, drive: string): Dirent {
    const taken = new Set([...parent.children!.values()].map((e) => e.shortName).filter((s): s is string => !!s));
    const short = this.volumeOf(drive).options.shortNames && !parent.caseSensitive ? shortNameFor(name, taken) : undefined;
    const dirent: Dirent = { name, node, parent, ...(short ? { shortName: short } : {}) };
    parent.children!.set(keyOf(parent, name), dirent);
    node.links.add(dirent);
    return dirent;
  }

  private unlink(dirent: Dirent): void {
    dirent.parent.children!.delete(keyOf(dirent.parent, dirent.name));
    dirent.node.links.delete(dirent);
  }

  /**
   * Walks a path. Reparse points on intermediate segments are always followed; on the final one
   * only when `followFinal` (FILE_FLAG_OPEN_REPARSE_POINT absent).
   */
  resolve(path: string, followFinal: boolean, token?: Token): Resolved {
    // Without SeChangeNotifyPrivilege ("bypass traverse checking"), every directory walked through
    // must grant FILE_TRAVERSE ([MS] File Security and Access Rights). Tokens normally hold it.
    const traverse = token !== undefined && !privilegeEnabled(token, SE_CHANGE_NOTIFY);
    let parsed = parsePath(path);
    for (let reparses = 0; ; ) {
      const volume = this.volumeOf(parsed.drive);
      let dir = volume.root;
      const walked: string[] = [];
      let restarted = false;
      if (parsed.components.length === 0) {
        const rootPath = formatPath(parsed.drive, []);
        return { parent: dir, parentPath: rootPath, name: '', dirent: { name: '', node: dir, parent: dir }, path: rootPath };
      }
      for (let i = 0; i < parsed.components.length; i += 1) {
        const segment = parsed.components[i]!;
        const isLast = i === parsed.components.length - 1;
        if (dir.kind !== 'dir') throw new WinError('ERROR_PATH_NOT_FOUND', `${formatPath(parsed.drive, walked)} is not a directory`);
        if (traverse) this.demand(token, dir.sd, FILE_TRAVERSE, `traverse ${formatPath(parsed.drive, walked)}`);
        const entry = this.findChild(dir, segment);
        if (!entry) {
          if (isLast) {
            return {
              parent: dir, parentPath: formatPath(parsed.drive, walked), name: segment,
              ...(parsed.stream !== undefined ? { stream: parsed.stream } : {}),
              path: formatPath(parsed.drive, [...walked, segment]),
            };
          }
          throw new WinError('ERROR_PATH_NOT_FOUND', `${formatPath(parsed.drive, [...walked, segment])} does not exist`);
        }
        if (entry.node.reparse && (!isLast || followFinal)) {
          reparses += 1;
          if (reparses > MAX_REPARSE) throw new WinError('ERROR_CANT_RESOLVE_FILENAME', `too many reparse points in ${path}`);
          const target = entry.node.reparse.target;
          const base = /^[A-Za-z]:/.test(target) || target.startsWith('\\\\') ? target : formatPath(parsed.drive, [...walked, target]);
          const remaining = parsed.components.slice(i + 1);
          const next = [base, ...remaining].join('\\') + (parsed.stream !== undefined ? `:${parsed.stream}` : '');
          parsed = parsePath(next);
          restarted = true;
          break;
        }
        if (isLast) {
          return {
            parent: dir, parentPath: formatPath(parsed.drive, walked), name: entry.name, dirent: entry,
            ...(parsed.stream !== undefined ? { stream: parsed.stream } : {}),
            path: formatPath(parsed.drive, [...walked, entry.name]),
          };
        }
        walked.push(entry.name);
        dir = entry.node;
      }
      if (!restarted) throw new WinError('ERROR_PATH_NOT_FOUND', path);
    }
  }

  // --- checks ------------------------------------------------------------------------------------

  check(token: Token, sd: SecurityDescriptor, desired: number): AccessDecision {
    return accessCheck(token, sd, desired, { writeRestrictedReading: this.options.writeRestrictedReading });
  }

  private demand(token: Token, sd: SecurityDescriptor, desired: number, what: string): void {
    const decision = this.check(token, sd, desired);
    if (!decision.granted) throw new WinError('ERROR_ACCESS_DENIED', `${what}: ${decision.reason} (${decision.pass} pass)`, decision);
  }

  /** Open an existing object ([MS-FSA] 2.1.5.1.2.1), with the parent's FILE_DELETE_CHILD fallback. */
  private demandExisting(token: Token, r: Resolved, desired: number, what: string): void {
    const node = r.dirent!.node;
    let rest = desired;
    if (desired & DELETE) {
      const own = this.check(token, node.sd, DELETE);
      const viaParent = own.granted ? own : this.check(token, r.parent.sd, FILE_DELETE_CHILD);
      if (!viaParent.granted) {
        const reason = own.granted ? '' : own.reason;
        throw new WinError('ERROR_ACCESS_DENIED', `${what}: DELETE ${reason}; parent FILE_DELETE_CHILD ${viaParent.granted ? 'granted' : viaParent.reason}`, viaParent);
      }
      rest &= ~DELETE;
    }
    if (rest !== 0) this.demand(token, node.sd, rest, what);
  }

  private demandCreate(token: Token, r: Resolved, kind: NodeKind, what: string): void {
    this.demand(token, r.parent.sd, kind === 'dir' ? FILE_ADD_SUBDIRECTORY : FILE_ADD_FILE, what);
  }

  private createNode(token: Token, r: Resolved, kind: NodeKind, creatorDacl?: { aces: Ace[]; protected: boolean }): FsNode {
    const owner = token.defaultOwner;
    const dacl = daclForNewObject(r.parent.sd.dacl, kind === 'dir', owner, token.defaultDacl, creatorDacl);
    const node = this.newNode(kind, { owner, dacl, daclProtected: creatorDacl?.protected ?? false });
    this.link(r.parent, r.name, node, parsePath(r.path).drive);
    return node;
  }

  // --- operations a sandboxed program can attempt ----------------------------------------------

  /** CreateFile for writing (create if missing), then replace or append the data. */
  writeFile(token: Token, path: string, data: string, options: { append?: boolean; creatorDacl?: { aces: Ace[]; protected: boolean } } = {}): void {
    const r = this.resolve(path, true, token);
    const desired = options.append ? FILE_APPEND_DATA : FILE_WRITE_DATA;
    let node: FsNode;
    if (r.dirent) {
      node = r.dirent.node;
      if (node.kind === 'dir' && r.stream === undefined) throw new WinError('ERROR_ACCESS_DENIED', `${r.path} is a directory`);
      this.demandExisting(token, r, desired, `write ${path}`);
    } else {
      if (r.stream !== undefined) throw new WinError('ERROR_FILE_NOT_FOUND', `${r.path} does not exist`);
      this.demandCreate(token, r, 'file', `create ${path}`);
      node = this.createNode(token, r, 'file', options.creatorDacl);
    }
    if (r.stream !== undefined) {
      const key = r.stream.toUpperCase();
      const current = node.streams.get(key)?.data ?? '';
      node.streams.set(key, { name: r.stream, data: options.append ? current + data : data });
    } else {
      node.data = options.append ? node.data + data : data;
    }
  }

  readFile(token: Token, path: string): string {
    const r = this.resolve(path, true, token);
    if (!r.dirent) throw new WinError('ERROR_FILE_NOT_FOUND', `${r.path} does not exist`);
    this.demandExisting(token, r, FILE_READ_DATA, `read ${path}`);
    const node = r.dirent.node;
    if (r.stream !== undefined) {
      const s = node.streams.get(r.stream.toUpperCase());
      if (!s) throw new WinError('ERROR_FILE_NOT_FOUND', `no stream ${r.stream} on ${r.path}`);
      return s.data;
    }
    if (node.kind === 'dir') return [...node.children!.values()].map((e) => e.name).join('\n');
    return node.data;
  }

  mkdir(token: Token, path: string, creatorDacl?: { aces: Ace[]; protected: boolean }): void {
    const r = this.resolve(path, true, token);
    if (r.dirent) throw new WinError('ERROR_ALREADY_EXISTS', `${r.path} exists`);
    this.demandCreate(token, r, 'dir', `mkdir ${path}`);
    this.createNode(token, r, 'dir', creatorDacl);
  }

  /** DeleteFile / RemoveDirectory: opens the name itself (a link is deleted, not its target). */
  delete(token: Token, path: string): void {
    const r = this.resolve(path, false, token);
    if (!r.dirent) throw new WinError('ERROR_FILE_NOT_FOUND', `${r.path} does not exist`);
    if (r.stream !== undefined) {
      this.demandExisting(token, r, FILE_WRITE_DATA, `delete stream ${path}`);
      r.dirent.node.streams.delete(r.stream.toUpperCase());
      return;
    }
    if (r.dirent.parent === r.dirent.node) throw new WinError('ERROR_ACCESS_DENIED', 'a volume root cannot be deleted');
    this.demandExisting(token, r, DELETE, `delete ${path}`);
    const node = r.dirent.node;
    if (node.kind === 'dir' && !node.reparse && node.children!.size > 0) throw new WinError('ERROR_DIR_NOT_EMPTY', `${r.path} is not empty`);
    this.unlink(r.dirent);
  }

  /** Deletes a tree as `token`, children first; reparse points are deleted, not followed. */
  deleteTree(token: Token, path: string): void {
    const r = this.resolve(path, false, token);
    if (!r.dirent) return;
    const node = r.dirent.node;
    if (node.kind === 'dir' && !node.reparse) {
      for (const e of [...node.children!.values()]) this.deleteTree(token, joinPath(r.path, e.name));
    }
    this.delete(token, r.path);
  }

  /** MoveFileEx: DELETE on the source, add-entry on the target directory, DELETE on a replaced target. */
  rename(token: Token, from: string, to: string, options: { replace?: boolean } = {}): void {
    const src = this.resolve(from, false, token);
    if (!src.dirent) throw new WinError('ERROR_FILE_NOT_FOUND', `${src.path} does not exist`);
    if (src.dirent.parent === src.dirent.node) throw new WinError('ERROR_ACCESS_DENIED', 'a volume root cannot be renamed');
    const dst = this.resolve(to, false, token);
    if (parsePath(src.path).drive !== parsePath(dst.path).drive) throw new WinError('ERROR_NOT_SAME_DEVICE', 'rename across volumes');
    this.demandExisting(token, src, DELETE, `rename ${from}`);
    const kind = src.dirent.node.kind;
    this.demandCreate(token, dst, kind, `rename into ${dst.parentPath}`);
    if (dst.dirent) {
      if (!options.replace) throw new WinError('ERROR_ALREADY_EXISTS', `${dst.path} exists`);
      this.demandExisting(token, dst, DELETE, `replace ${to}`);
      if (dst.dirent.node.kind === 'dir') throw new WinError('ERROR_ACCESS_DENIED', `cannot replace directory ${dst.path}`);
      this.unlink(dst.dirent);
    }
    const node = src.dirent.node;
    this.unlink(src.dirent);
    this.link(dst.parent, dst.name, node, parsePath(dst.path).drive);
  }

  /** SetSecurityInfo(DACL) through a handle opened for WRITE_DAC: sets the explicit ACEs. */
  setDacl(token: Token, path: string, explicit: Ace[]): void {
    const r = this.resolve(path, true, token);
    if (!r.dirent) throw new WinError('ERROR_FILE_NOT_FOUND', `${r.path} does not exist`);
    this.demandExisting(token, r, WRITE_DAC, `set DACL of ${path}`);
    const node = r.dirent.node;
    node.sd = { ...node.sd, dacl: [...canonicalExplicit(explicit), ...(node.sd.dacl ?? []).filter(isInherited)] };
  }

  /** SetSecurityInfo(OWNER): WRITE_OWNER, and the new owner must be the caller (or SeRestore). */
  setOwner(token: Token, path: string, owner: string): void {
    const r = this.resolve(path, true, token);
    if (!r.dirent) throw new WinError('ERROR_FILE_NOT_FOUND', `${r.path} does not exist`);
    this.demandExisting(token, r, WRITE_OWNER, `take ownership of ${path}`);
    const assignable = owner === token.user || token.groups.some((g) => g.sid === owner && g.owner && g.enabled);
    if (!assignable && !privilegeEnabled(token, SE_RESTORE)) throw new WinError('ERROR_INVALID_OWNER', `${owner} cannot be set as owner`);
    r.dirent.node.sd = { ...r.dirent.node.sd, owner };
  }

  readSecurity(token: Token, path: string): SecurityDescriptor {
    const r = this.resolve(path, true, token);
    if (!r.dirent) throw new WinError('ERROR_FILE_NOT_FOUND', `${r.path} does not exist`);
    this.demandExisting(token, r, READ_CONTROL, `read security of ${path}`);
    return r.dirent.node.sd;
  }

  /** mklink /J: create an empty directory, then FSCTL_SET_REPARSE_POINT on it. */
  createJunction(token: Token, path: string, target: string): void {
    const r = this.resolve(path, false, token);
    if (r.dirent) {
      const node = r.dirent.node;
      if (node.kind !== 'dir' || node.children!.size > 0) throw new WinError('ERROR_DIR_NOT_EMPTY', `${r.path} must be an empty directory`);
      const decision = this.check(token, node.sd, FILE_WRITE_ATTRIBUTES);
      if (!decision.granted) this.demand(token, node.sd, FILE_WRITE_DATA, `set reparse point on ${path}`);
      node.reparse = { tag: 'junction', target };
      return;
    }
    this.demandCreate(token, r, 'dir', `create junction ${path}`);
    const node = this.createNode(token, r, 'dir');
    node.reparse = { tag: 'junction', target };
  }

  createSymlink(token: Token, path: string, target: string, kind: NodeKind): void {
    const r = this.resolve(path, false, token);
    const volume = this.volumeOf(parsePath(r.path).drive);
    if (!volume.options.unprivilegedSymlinks && !privilegeEnabled(token, SE_CREATE_SYMBOLIC_LINK)) {
      throw new WinError('ERROR_PRIVILEGE_NOT_HELD', `creating ${path} needs SeCreateSymbolicLinkPrivilege`);
    }
    if (r.dirent) throw new WinError('ERROR_ALREADY_EXISTS', `${r.path} exists`);
    this.demandCreate(token, r, kind, `create symlink ${path}`);
    const node = this.createNode(token, r, kind);
    node.reparse = { tag: 'symlink', target };
  }

  /**
   * CreateHardLink: an entry in the new directory (FILE_ADD_FILE). Modelled without any right on
   * the existing file: the permissive assumption, so that a plan that holds here also holds if
   * Windows demands more.
   */
  createHardLink(token: Token, newPath: string, existing: string): void {
    const src = this.resolve(existing, true, token);
    if (!src.dirent || src.dirent.node.kind !== 'file') throw new WinError('ERROR_FILE_NOT_FOUND', `${existing} is not a file`);
    const dst = this.resolve(newPath, false, token);
    if (dst.dirent) throw new WinError('ERROR_ALREADY_EXISTS', `${dst.path} exists`);
    if (parsePath(src.path).drive !== parsePath(dst.path).drive) throw new WinError('ERROR_NOT_SAME_DEVICE', 'hard link across volumes');
    this.demandCreate(token, dst, 'file', `hard link ${newPath}`);
    this.link(dst.parent, dst.name, src.dirent.node, parsePath(dst.path).drive);
  }

  // --- administrative helpers (fixtures, the simulated Win32 layer) -------------------------------

  exists(path: string): boolean {
    try {
      return this.resolve(path, true).dirent !== undefined;
    } catch {
      return false;
    }
  }

  stat(path: string, followFinal = true): { kind: NodeKind; reparse?: string; links: number; id: number } | null {
    try {
      const r = this.resolve(path, followFinal);
      if (!r.dirent) return null;
      const node = r.dirent.node;
      return { kind: node.kind, links: node.links.size, id: node.id, ...(node.reparse ? { reparse: node.reparse.tag } : {}) };
    } catch {
      return null;
    }
  }

  /** The canonical path (reparse points followed, names as stored). */
  realPath(path: string): string {
    return this.resolve(path, true).path;
  }

  list(path: string): { name: string; kind: NodeKind; reparse?: string }[] {
    const r = this.resolve(path, true);
    if (!r.dirent || r.dirent.node.kind !== 'dir') throw new WinError('ERROR_DIRECTORY', `${path} is not a directory`);
    return [...r.dirent.node.children!.values()].map((e) => ({
      name: e.name, kind: e.node.kind, ...(e.node.reparse ? { reparse: e.node.reparse.tag } : {}),
    }));
  }

  shortNameOf(path: string): string | undefined {
    return this.resolve(path, false).dirent?.shortName;
  }

  nodeAt(path: string, followFinal = true): FsNode | undefined {
    return this.resolve(path, followFinal).dirent?.node;
  }

  /** Create a directory chain with an explicit SD for the last one; parents inherit. */
  adminMkdirs(path: string, owner: string, explicit?: { aces: Ace[]; protected: boolean }): FsNode {
    const parsed = parsePath(path);
    let current = this.volumeOf(parsed.drive).root;
    parsed.components.forEach((segment, i) => {
      const isLast = i === parsed.components.length - 1;
      let entry = this.findChild(current, segment);
      if (!entry) {
        const dacl = daclForNewObject(current.sd.dacl, true, owner, null, isLast ? explicit : undefined);
        const node = this.newNode('dir', { owner, dacl, daclProtected: isLast ? explicit?.protected ?? false : false });
        entry = this.link(current, segment, node, parsed.drive);
      } else if (isLast && explicit) {
        const sd = entry.node.sd;
        entry.node.sd = { ...sd, dacl: daclForNewObject(current.sd.dacl, true, sd.owner, null, explicit), daclProtected: explicit.protected };
      }
      current = entry.node;
    });
    return current;
  }

  adminWriteFile(path: string, data: string, owner: string, explicit?: { aces: Ace[]; protected: boolean }): FsNode {
    const r = this.resolve(path, true);
    if (r.dirent) {
      r.dirent.node.data = data;
      return r.dirent.node;
    }
    const dacl = daclForNewObject(r.parent.sd.dacl, false, owner, null, explicit);
    const node = this.newNode('file', { owner, dacl, daclProtected: explicit?.protected ?? false });
    node.data = data;
    this.link(r.parent, r.name, node, parsePath(r.path).drive);
    return node;
  }

  adminJunction(path: string, target: string, owner: string): void {
    const node = this.adminMkdirs(path, owner);
    node.reparse = { tag: 'junction', target };
  }

  adminHardLink(newPath: string, existing: string): void {
    const src = this.resolve(existing, true);
    const dst = this.resolve(newPath, false);
    this.link(dst.parent, dst.name, src.dirent!.node, parsePath(dst.path).drive);
  }

  adminSetCaseSensitive(path: string, caseSensitive: boolean): void {
    const node = this.nodeAt(path)!;
    const entries = [...node.children!.values()];
    node.caseSensitive = caseSensitive;
    node.children!.clear();
    for (const e of entries) node.children!.set(keyOf(node, e.name), e);
  }

  /** A case-sensitive directory may hold names that differ only in case. */
  adminMkdirExactCase(parentPath: string, name: string, owner: string): void {
    const parent = this.nodeAt(parentPath)!;
    const dacl = daclForNewObject(parent.sd.dacl, true, owner, null);
    const node = this.newNode('dir', { owner, dacl, daclProtected: false });
    this.link(parent, name, node, parsePath(parentPath).drive);
  }

  /**
   * SetNamedSecurityInfo(DACL) as called by icacls or the enforcer: replaces the explicit ACEs of
   * `path` and re-propagates inherited ACEs to every descendant reached by name, stopping at
   * protected DACLs and not descending into reparse points. A descendant whose DACL the caller
   * cannot change (no WRITE_DAC) is reported and skipped, as icacls does.
   */
  setExplicitAndPropagate(token: Token, path: string, explicit: Ace[], options: { protect?: boolean } = {}): { failed: string[] } {
    const r = this.resolve(path, false);
    if (!r.dirent) throw new WinError('ERROR_FILE_NOT_FOUND', `${path} does not exist`);
    this.demandExisting(token, r, WRITE_DAC, `set DACL of ${path}`);
    const node = r.dirent.node;
    const protect = options.protect ?? node.sd.daclProtected;
    const inherited = protect ? [] : (node.sd.dacl ?? []).filter(isInherited);
    node.sd = { ...node.sd, dacl: [...canonicalExplicit(explicit), ...inherited], daclProtected: protect };
    const failed: string[] = [];
    this.propagate(token, node, r.path, failed, new Set([node.id]));
    return { failed };
  }

  private propagate(token: Token, dir: FsNode, dirPath: string, failed: string[], seen: Set<number>): void {
    if (dir.kind !== 'dir' || dir.reparse) return;
    for (const entry of dir.children!.values()) {
      const child = entry.node;
      const childPath = joinPath(dirPath, entry.name);
      if (child.sd.daclProtected) continue;
      if (!this.check(token, child.sd, WRITE_DAC).granted) {
        failed.push(childPath);
        continue;
      }
      child.sd = { ...child.sd, dacl: repropagate(child.sd.dacl, dir.sd.dacl, child.kind === 'dir', child.sd.owner) };
      if (!seen.has(child.id)) {
        seen.add(child.id);
        this.propagate(token, child, childPath, failed, seen);
      }
    }
  }

  /** icacls /inheritance:d: copy inherited ACEs as explicit ones and protect the DACL. */
  protectInheritance(token: Token, path: string): void {
    const r = this.resolve(path, false);
    if (!r.dirent) throw new WinError('ERROR_FILE_NOT_FOUND', `${path} does not exist`);
    this.demandExisting(token, r, WRITE_DAC, `protect DACL of ${path}`);
    const node = r.dirent.node;
    const all = (node.sd.dacl ?? []).map((a) => ({ ...a, flags: a.flags & ~0x10 }));
    node.sd = { ...node.sd, dacl: all, daclProtected: true };
  }

  /** Every regular file under `root` (by name, reparse points not followed) with more than one name. */
  multiLinkFiles(root: string): string[] {
    const found: string[] = [];
    const r = this.resolve(root, true);
    const walk = (node: FsNode, path: string) => {
      if (node.kind !== 'dir' || node.reparse) return;
      for (const e of node.children!.values()) {
        const p = joinPath(path, e.name);
        if (e.node.kind === 'file' && e.node.links.size > 1) found.push(p);
        walk(e.node, p);
      }
    };
    if (r.dirent) walk(r.dirent.node, r.path);
    return found;
  }
}
