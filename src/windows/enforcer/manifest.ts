// The manifest: a write-ahead log of every change cordon makes to a Windows machine. An `intent`
// record is appended (and flushed) *before* each change and a `done` record after it, so that a
// crash at any point leaves enough to undo the change: rollback after a failed setup and
// `cordon uninstall` both replay it backwards. Undo operations tolerate "already gone".

import { appendFileSync, closeSync, existsSync, fsyncSync, mkdirSync, openSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import type { Ace } from '../acl.js';
import type { FirewallRule } from '../types.js';

export type Change =
  | { op: 'created-dir'; path: string; tree?: boolean }
  | { op: 'wrote-file'; path: string }
  | { op: 'created-group'; name: string; sid?: string }
  | { op: 'created-user'; name: string; sid?: string }
  | { op: 'added-member'; group: string; memberSid: string }
  | { op: 'hid-user'; name: string }
  | { op: 'added-rights'; sid: string; rights: string[] }
  | { op: 'put-firewall-rule'; name: string; previous: FirewallRule | null }
  | { op: 'removed-firewall-rule'; rule: FirewallRule }
  | { op: 'added-aces'; path: string; aces: Ace[] };

export type ManifestRecord =
  | { kind: 'intent'; seq: number; change: Change; at: string }
  | { kind: 'done'; seq: number; detail?: Partial<Change> }
  | { kind: 'undone'; seq: number };

export interface ManifestStore {
  readonly location: string;
  load(): Promise<ManifestRecord[]>;
  append(record: ManifestRecord): Promise<void>;
  /** Replace the whole log (after an uninstall, with whatever could not be undone). */
  replace(records: ManifestRecord[]): Promise<void>;
}

/** Changes still in force: intents not undone, merged with the detail their `done` record added. */
export function pendingChanges(records: readonly ManifestRecord[]): { seq: number; change: Change; completed: boolean }[] {
  const intents = new Map<number, { change: Change; completed: boolean }>();
  for (const r of records) {
    if (r.kind === 'intent') intents.set(r.seq, { change: r.change, completed: false });
    else if (r.kind === 'done') {
      const i = intents.get(r.seq);
      if (i) intents.set(r.seq, { change: { ...i.change, ...(r.detail ?? {}) } as Change, completed: true });
    } else intents.delete(r.seq);
  }
  return [...intents.entries()].sort((a, b) => a[0] - b[0]).map(([seq, v]) => ({ seq, ...v }));
}

export function nextSeq(records: readonly ManifestRecord[]): number {
  return records.reduce((max, r) => Math.max(max, r.seq), 0) + 1;
}

/** One JSON record per line, appended and fsync'd before the change it announces is made. */
export class JsonlManifestStore implements ManifestStore {
  constructor(readonly location: string) {}

  async load(): Promise<ManifestRecord[]> {
    if (!existsSync(this.location)) return [];
    const lines = readFileSync(this.location, 'utf8').split('\n').filter((l) => l.trim());
    const out: ManifestRecord[] = [];
    for (const [i, line] of lines.entries()) {
      try {
        out.push(JSON.parse(line) as ManifestRecord);
      } catch {
        // A torn last line is what a crash mid-append leaves; anything earlier is corruption.
        if (i < lines.length - 1) throw new Error(`manifest ${this.location}: line ${i + 1} is not valid JSON; fix or remove the file`);
      }
    }
    return out;
  }

  async append(record: ManifestRecord): Promise<void> {
    mkdirSync(path.dirname(this.location), { recursive: true });
    appendFileSync(this.location, JSON.stringify(record) + '\n');
    const fd = openSync(this.location, 'r+');
    try {
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
  }

  async replace(records: ManifestRecord[]): Promise<void> {
    mkdirSync(path.dirname(this.location), { recursive: true });
    const tmp = `${this.location}.tmp`;
    writeFileSync(tmp, records.map((r) => JSON.stringify(r) + '\n').join(''));
    renameSync(tmp, this.location);
  }
}

export class MemoryManifestStore implements ManifestStore {
  records: ManifestRecord[] = [];
  constructor(readonly location = 'memory') {}
  async load() {
    return this.records.map((r) => structuredClone(r));
  }
  async append(record: ManifestRecord) {
    this.records.push(structuredClone(record));
  }
  async replace(records: ManifestRecord[]) {
    this.records = records.map((r) => structuredClone(r));
  }
}

/** Wraps a store: every change goes through intent → action → done. */
export class Journal {
  private seq = 1;
  private constructor(readonly store: ManifestStore) {}

  static async open(store: ManifestStore): Promise<Journal> {
    const j = new Journal(store);
    j.seq = nextSeq(await store.load());
    return j;
  }

  async record<T>(change: Change, action: () => Promise<T>, detail?: (result: T) => Partial<Change>): Promise<T> {
    const seq = this.seq++;
    await this.store.append({ kind: 'intent', seq, change, at: new Date().toISOString() });
    const result = await action();
    await this.store.append({ kind: 'done', seq, ...(detail ? { detail: detail(result) } : {}) });
    return result;
  }
}
