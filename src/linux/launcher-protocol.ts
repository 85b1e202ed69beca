// The wire format between cordon and native/launcher.c, which runs as PID 1 inside the sandbox.
// cordon → launcher: Node IPC messages `{"c": base64(frame)}`; a frame is a kind byte followed by
// records (u16 type, u32 length, data; little-endian). launcher → cordon: JSON events (below) and
// Node handle messages that carry listening sockets and stdio pipes.
// Keep the numbers in sync with the enums at the top of native/launcher.c.

export const Rec = {
  MODE: 1, ARGV: 2, ENV: 3, CWD: 4, PTY: 5, RLIMIT: 6, NO_PIDNS: 7,
  LL_FS: 10, LL_NET: 11, LL_SCOPED: 12, LL_PATH: 13, LL_PORT: 14, LL_REQUIRED: 15,
  SC_PROGRAM: 20, SC_DENY: 21, SC_OBSERVE: 22, SC_REQUIRED: 23,
  OBS_OK: 30, OBS_BAD: 31,
  LISTEN_TCP: 40, LISTEN_UDP: 41,
  JOB: 50, STDIO: 51,
} as const;

export const Frame = { PLAN: 0x50, EXEC: 0x45, SIGNAL: 0x53, KILL_ALL: 0x4b, RESIZE: 0x57, SHUTDOWN: 0x58 } as const;

/** Linux RLIMIT_* numbers (the same on x86_64 and aarch64). */
export const RLIMIT = { CPU: 0, FSIZE: 1, DATA: 2, STACK: 3, CORE: 4, NPROC: 6, NOFILE: 7, AS: 9 } as const;

export interface LandlockPlan {
  /** Filesystem rights handled (denied unless a rule grants them). */
  handledFs: bigint;
  handledNet: bigint;
  scoped: bigint;
  rules: { path: string; access: bigint }[];
  ports: { port: number; access: bigint }[];
  /** Minimum ABI the plan needs; 0 when Landlock is optional. */
  requiredAbi: number;
}

export interface SeccompPlan {
  program: Buffer;
  required: boolean;
  /** Syscall number → errno the supervisor answers with (user-notification denials). */
  denied: { nr: number; errno: number }[];
  /** Write-intent syscalls reported when their target lies outside `okPrefixes` or inside `badPrefixes`. */
  observed: { nr: number; flagsArg: number; paths: [number | null, number][] }[];
  okPrefixes: string[];
  badPrefixes: string[];
  /** Syscall names by number, for reports (not sent to the launcher). */
  names?: Map<number, string>;
}

export interface Listener { id: number; proto: 'tcp' | 'udp'; address: string; port: number }

export interface LauncherPlan {
  /** single: run `argv` and exit with it; session: wait for exec frames. */
  mode: 'single' | 'session';
  /** Reduced tier: no PID namespace; the launcher tracks and kills its descendants itself. */
  noPidNamespace?: boolean;
  argv?: string[];
  env?: Record<string, string>;
  cwd?: string;
  pty?: boolean;
  rlimits: { resource: number; soft: bigint; hard: bigint }[];
  landlock: LandlockPlan | null;
  seccomp: SeccompPlan | null;
  listeners: Listener[];
}

export interface ExecRequest {
  job: number;
  argv: string[];
  env: Record<string, string>;
  cwd: string;
  pty?: boolean;
  /** Per stream: inherit the launcher's, a pipe handed back to cordon, or /dev/null. */
  stdio: ['inherit' | 'pipe' | 'null', 'inherit' | 'pipe' | 'null', 'inherit' | 'pipe' | 'null'];
  /** Open fd 3 in the command as a pipe back to cordon. */
  statePipe?: boolean;
}

/** Events the launcher sends (one JSON object per line). */
export type LauncherEvent =
  | { e: 'ready'; landlock: number; seccomp: boolean; seccompNotify: boolean; noNewPrivs: boolean }
  | { e: 'started'; job: number; pid: number }
  | { e: 'exit'; job: number; code: number | null; signal: number | null; execErrno: number; userUs: number; sysUs: number; maxRssKb: number }
  | { e: 'violation'; job: number; kind: 'syscall'; nr: number; arg0: number; arg1: number }
  | { e: 'violation'; job: number; kind: 'write'; nr: number; path: string }
  | { e: 'listener'; id: number; proto: 'tcp' | 'udp' }
  | { e: 'stdio'; job: number; fd: 0 | 1 | 2 | 3 }
  | { e: 'error'; msg: string; errno: number };

class FrameWriter {
  private parts: Buffer[];
  constructor(kind: number) {
    this.parts = [Buffer.from([kind])];
  }
  rec(type: number, data: Buffer): this {
    const head = Buffer.alloc(6);
    head.writeUInt16LE(type, 0);
    head.writeUInt32LE(data.length, 2);
    this.parts.push(head, data);
    return this;
  }
  str(type: number, s: string): this {
    return this.rec(type, Buffer.from(s));
  }
  strings(type: number, list: string[]): this {
    for (const s of list) if (s.includes('\0')) throw new Error(`cannot pass a string containing NUL: ${JSON.stringify(s)}`);
    return this.rec(type, Buffer.from(list.map((s) => s + '\0').join('')));
  }
  u8(type: number, v: number): this {
    return this.rec(type, Buffer.from([v]));
  }
  u32(type: number, v: number): this {
    const b = Buffer.alloc(4);
    b.writeUInt32LE(v >>> 0);
    return this.rec(type, b);
  }
  u64(type: number, v: bigint): this {
    const b = Buffer.alloc(8);
    b.writeBigUInt64LE(v);
    return this.rec(type, b);
  }
  done(): { c: string } {
    return { c: Buffer.concat(this.parts).toString('base64') };
  }
}

function envList(env: Record<string, string>): string[] {
  return Object.entries(env).map(([k, v]) => `${k}=${v}`);
}

export function encodePlan(plan: LauncherPlan): { c: string } {
  const w = new FrameWriter(Frame.PLAN).u8(Rec.MODE, plan.mode === 'session' ? 1 : 0);
  if (plan.noPidNamespace) w.u8(Rec.NO_PIDNS, 1);
  if (plan.argv) w.strings(Rec.ARGV, plan.argv);
  if (plan.env) w.strings(Rec.ENV, envList(plan.env));
  if (plan.cwd) w.str(Rec.CWD, plan.cwd);
  if (plan.pty) w.u8(Rec.PTY, 1);
  for (const r of plan.rlimits) {
    const b = Buffer.alloc(24);
    b.writeBigUInt64LE(BigInt(r.resource), 0);
    b.writeBigUInt64LE(r.soft, 8);
    b.writeBigUInt64LE(r.hard, 16);
    w.rec(Rec.RLIMIT, b);
  }
  const ll = plan.landlock;
  if (ll) {
    w.u64(Rec.LL_FS, ll.handledFs).u64(Rec.LL_NET, ll.handledNet).u64(Rec.LL_SCOPED, ll.scoped).u32(Rec.LL_REQUIRED, ll.requiredAbi);
    for (const r of ll.rules) {
      const b = Buffer.alloc(8);
      b.writeBigUInt64LE(r.access);
      w.rec(Rec.LL_PATH, Buffer.concat([b, Buffer.from(r.path)]));
    }
    for (const p of ll.ports) {
      const b = Buffer.alloc(16);
      b.writeBigUInt64LE(p.access, 0);
      b.writeBigUInt64LE(BigInt(p.port), 8);
      w.rec(Rec.LL_PORT, b);
    }
  }
  const sc = plan.seccomp;
  if (sc) {
    w.rec(Rec.SC_PROGRAM, sc.program).u8(Rec.SC_REQUIRED, sc.required ? 1 : 0);
    for (const d of sc.denied) {
      const b = Buffer.alloc(8);
      b.writeUInt32LE(d.nr, 0);
      b.writeInt32LE(d.errno, 4);
      w.rec(Rec.SC_DENY, b);
    }
    for (const o of sc.observed) {
      const b = Buffer.alloc(10);
      b.writeUInt32LE(o.nr, 0);
      b.writeInt8(o.flagsArg, 4);
      b.writeUInt8(Math.min(o.paths.length, 2), 5);
      o.paths.slice(0, 2).forEach(([dirfd, path], i) => {
        b.writeInt8(dirfd ?? -1, 6 + 2 * i);
        b.writeUInt8(path, 7 + 2 * i);
      });
      w.rec(Rec.SC_OBSERVE, b);
    }
    for (const p of sc.okPrefixes) w.str(Rec.OBS_OK, p);
    for (const p of sc.badPrefixes) w.str(Rec.OBS_BAD, p);
  }
  for (const l of plan.listeners) {
    const b = Buffer.alloc(10);
    b.writeUInt32LE(l.id, 0);
    Buffer.from(l.address.split('.').map(Number)).copy(b, 4); // network byte order
    b.writeUInt16LE(l.port, 8);
    w.rec(l.proto === 'udp' ? Rec.LISTEN_UDP : Rec.LISTEN_TCP, b);
  }
  return w.done();
}

export function encodeExec(req: ExecRequest): { c: string } {
  const stdio = req.stdio.map((s) => (s === 'inherit' ? 'i' : s === 'pipe' ? 'p' : 'n')).join('') + (req.statePipe ? 'p' : '-');
  const w = new FrameWriter(Frame.EXEC)
    .u32(Rec.JOB, req.job)
    .strings(Rec.ARGV, req.argv)
    .strings(Rec.ENV, envList(req.env))
    .str(Rec.CWD, req.cwd)
    .str(Rec.STDIO, stdio);
  if (req.pty) w.u8(Rec.PTY, 1);
  return w.done();
}

function fixed(kind: number, values: number[]): { c: string } {
  const b = Buffer.alloc(1 + 4 * values.length);
  b[0] = kind;
  values.forEach((v, i) => b.writeUInt32LE(v >>> 0, 1 + 4 * i));
  return { c: b.toString('base64') };
}

export const encodeSignal = (job: number, signo: number) => fixed(Frame.SIGNAL, [job, signo]);
export const encodeKillAll = (signo: number) => fixed(Frame.KILL_ALL, [signo]);
/** SIGKILL everything in the sandbox and end the launcher (and with it the sandbox). */
export const encodeShutdown = () => fixed(Frame.SHUTDOWN, []);
export const encodeResize = (job: number, rows: number, cols: number) =>
  fixed(Frame.RESIZE, [job, ((rows & 0xffff) << 16) | (cols & 0xffff)]);
