// A small classic-BPF assembler, enough for seccomp filters: 32-bit absolute loads, AND,
// conditional jumps with symbolic targets, unconditional jumps and returns. Jumps resolve to the
// kernel's relative offsets; a conditional jump further than 255 instructions goes through an
// inserted `ja` trampoline (ja has a 32-bit offset), so callers never count instructions.

/** The kernel refuses longer classic BPF programs (BPF_MAXINSNS). */
export const BPF_MAX_INSTRUCTIONS = 4096;

// Opcode parts from linux/bpf_common.h.
const BPF_LD = 0x00, BPF_ALU = 0x04, BPF_JMP = 0x05, BPF_RET = 0x06;
const BPF_W = 0x00, BPF_ABS = 0x20, BPF_K = 0x00, BPF_AND = 0x50;
const BPF_JA = 0x00, BPF_JEQ = 0x10, BPF_JGT = 0x20, BPF_JGE = 0x30, BPF_JSET = 0x40;

/** Opcodes this assembler emits (and the test interpreter understands). */
export const OPCODE = {
  loadAbsWord: BPF_LD | BPF_W | BPF_ABS,
  andK: BPF_ALU | BPF_AND | BPF_K,
  jumpAlways: BPF_JMP | BPF_JA,
  jumpEqK: BPF_JMP | BPF_JEQ | BPF_K,
  jumpGtK: BPF_JMP | BPF_JGT | BPF_K,
  jumpGeK: BPF_JMP | BPF_JGE | BPF_K,
  jumpSetK: BPF_JMP | BPF_JSET | BPF_K,
  returnK: BPF_RET | BPF_K,
} as const;

/** One instruction as the kernel reads it (`struct sock_filter`). */
export interface SockFilter {
  code: number;
  jt: number;
  jf: number;
  k: number;
}

type Item =
  | { kind: 'plain'; code: number; k: number }
  | { kind: 'branch'; code: number; k: number; onTrue: string; onFalse: string }
  | { kind: 'jump'; target: string }
  | { kind: 'label'; name: string };

/** A branch target left out means "the next instruction". */
const NEXT = '\0next';

/**
 * A program under construction. Targets are label names; `label(name)` marks the position of the
 * next instruction. Only forward jumps exist in classic BPF, so a label must come after its uses.
 */
export class BpfProgram {
  private readonly items: Item[] = [];
  private readonly labels = new Set<string>();
  private readonly issued = new Set<string>();
  private generated = 0;

  /** A label name that cannot collide with any other in this program ('@' is reserved for these). */
  freshLabel(hint = 'L'): string {
    const name = `${hint}@${this.generated++}`;
    this.issued.add(name);
    return name;
  }

  label(name: string): this {
    if (name.includes('@') && !this.issued.has(name)) throw new Error(`bpf: label '${name}' uses '@', which is reserved for freshLabel()`);
    if (this.labels.has(name)) throw new Error(`bpf: label '${name}' defined twice`);
    this.labels.add(name);
    this.items.push({ kind: 'label', name });
    return this;
  }

  /** A = the 32-bit word at byte `offset` of the input (seccomp_data). */
  loadWord(offset: number): this {
    return this.plain(OPCODE.loadAbsWord, offset);
  }

  /** A = A & k. */
  and(k: number): this {
    return this.plain(OPCODE.andK, k);
  }

  /** Go to `onTrue` if A == k, else to `onFalse`. */
  jeq(k: number, onTrue?: string, onFalse?: string): this {
    return this.branch(OPCODE.jumpEqK, k, onTrue, onFalse);
  }

  /** Go to `onTrue` if A > k (unsigned), else to `onFalse`. */
  jgt(k: number, onTrue?: string, onFalse?: string): this {
    return this.branch(OPCODE.jumpGtK, k, onTrue, onFalse);
  }

  /** Go to `onTrue` if A >= k (unsigned), else to `onFalse`. */
  jge(k: number, onTrue?: string, onFalse?: string): this {
    return this.branch(OPCODE.jumpGeK, k, onTrue, onFalse);
  }

  /** Go to `onTrue` if A & k is non-zero, else to `onFalse`. */
  jset(k: number, onTrue?: string, onFalse?: string): this {
    return this.branch(OPCODE.jumpSetK, k, onTrue, onFalse);
  }

  /** Unconditional jump. */
  jump(target: string): this {
    this.items.push({ kind: 'jump', target });
    return this;
  }

  /** Stop and return k to the kernel (for seccomp: the action). */
  ret(k: number): this {
    return this.plain(OPCODE.returnK, k);
  }

  /** Resolve labels (inserting trampolines where needed) and return the instructions. */
  assemble(): SockFilter[] {
    const items = this.withExplicitFallthrough();
    // Each round fixes one out-of-range branch; a round can only lengthen other jumps, so the loop
    // ends after at most two trampolines per branch.
    const maxRounds = 2 * items.length + 1;
    for (let round = 0; round <= maxRounds; round++) {
      const positions = labelPositions(items);
      const farBranch = findFarBranch(items, positions);
      if (farBranch === undefined) return encodeItems(items, positions);
      const { index, side } = farBranch;
      const branch = items[index] as Extract<Item, { kind: 'branch' }>;
      const trampoline = this.freshLabel('trampoline');
      const target = side === 'onTrue' ? branch.onTrue : branch.onFalse;
      items.splice(index + 1, 0, { kind: 'label', name: trampoline }, { kind: 'jump', target });
      items[index] = { ...branch, [side]: trampoline };
    }
    throw new Error('bpf: jump resolution did not converge');
  }

  /** The program as the kernel's `struct sock_filter[]`. */
  toBuffer(): Buffer {
    return encodeProgram(this.assemble());
  }

  private plain(code: number, k: number): this {
    this.items.push({ kind: 'plain', code, k: checkU32(k) });
    return this;
  }

  private branch(code: number, k: number, onTrue = NEXT, onFalse = NEXT): this {
    this.items.push({ kind: 'branch', code, k: checkU32(k), onTrue, onFalse });
    return this;
  }

  /** Replace "next instruction" targets with real labels, so inserted trampolines cannot shift them. */
  private withExplicitFallthrough(): Item[] {
    const out: Item[] = [];
    for (const item of this.items) {
      if (item.kind === 'branch' && (item.onTrue === NEXT || item.onFalse === NEXT)) {
        const next = this.freshLabel('next');
        out.push({
          ...item,
          onTrue: item.onTrue === NEXT ? next : item.onTrue,
          onFalse: item.onFalse === NEXT ? next : item.onFalse,
        });
        out.push({ kind: 'label', name: next });
      } else {
        out.push(item);
      }
    }
    return out;
  }
}

/** Serialise to the kernel layout: u16 code, u8 jt, u8 jf, u32 k (little-endian, as on x86_64 and aarch64). */
export function encodeProgram(instructions: readonly SockFilter[]): Buffer {
  if (instructions.length === 0) throw new Error('bpf: empty program');
  if (instructions.length > BPF_MAX_INSTRUCTIONS) {
    throw new Error(`bpf: program has ${instructions.length} instructions, the kernel accepts at most ${BPF_MAX_INSTRUCTIONS}`);
  }
  const buf = Buffer.alloc(instructions.length * 8);
  instructions.forEach((insn, i) => {
    buf.writeUInt16LE(insn.code, i * 8);
    buf.writeUInt8(insn.jt, i * 8 + 2);
    buf.writeUInt8(insn.jf, i * 8 + 3);
    buf.writeUInt32LE(insn.k, i * 8 + 4);
  });
  return buf;
}

/** Parse a serialised program back into instructions. */
export function decodeProgram(buf: Buffer): SockFilter[] {
  if (buf.length % 8 !== 0) throw new Error(`bpf: program length ${buf.length} is not a multiple of 8`);
  const out: SockFilter[] = [];
  for (let off = 0; off < buf.length; off += 8) {
    out.push({ code: buf.readUInt16LE(off), jt: buf.readUInt8(off + 2), jf: buf.readUInt8(off + 3), k: buf.readUInt32LE(off + 4) });
  }
  return out;
}

function checkU32(k: number): number {
  if (!Number.isInteger(k) || k < 0 || k > 0xffffffff) throw new Error(`bpf: constant ${k} is not an unsigned 32-bit integer`);
  return k;
}

/** Label name -> index of the instruction it marks (only labels followed by an instruction). */
function labelPositions(items: readonly Item[]): Map<string, number> {
  const positions = new Map<string, number>();
  const pending: string[] = [];
  let n = 0;
  for (const item of items) {
    if (item.kind === 'label') {
      pending.push(item.name);
      continue;
    }
    for (const name of pending.splice(0)) positions.set(name, n);
    n++;
  }
  return positions;
}

function offsetTo(positions: Map<string, number>, from: number, target: string): number {
  const to = positions.get(target);
  if (to === undefined) throw new Error(`bpf: jump to label '${target}', which is undefined or marks no instruction`);
  const offset = to - from - 1;
  if (offset < 0) throw new Error(`bpf: backward jump to '${target}' (classic BPF only jumps forward)`);
  return offset;
}

function findFarBranch(items: readonly Item[], positions: Map<string, number>): { index: number; side: 'onTrue' | 'onFalse' } | undefined {
  let n = 0;
  for (let index = 0; index < items.length; index++) {
    const item = items[index]!;
    if (item.kind === 'label') continue;
    if (item.kind === 'branch') {
      if (offsetTo(positions, n, item.onTrue) > 255) return { index, side: 'onTrue' };
      if (offsetTo(positions, n, item.onFalse) > 255) return { index, side: 'onFalse' };
    }
    n++;
  }
  return undefined;
}

function encodeItems(items: readonly Item[], positions: Map<string, number>): SockFilter[] {
  const out: SockFilter[] = [];
  for (const item of items) {
    const n = out.length;
    switch (item.kind) {
      case 'label':
        break;
      case 'plain':
        out.push({ code: item.code, jt: 0, jf: 0, k: item.k });
        break;
      case 'branch':
        out.push({ code: item.code, jt: offsetTo(positions, n, item.onTrue), jf: offsetTo(positions, n, item.onFalse), k: item.k });
        break;
      case 'jump':
        out.push({ code: OPCODE.jumpAlways, jt: 0, jf: 0, k: offsetTo(positions, n, item.target) });
        break;
    }
  }
  const last = out[out.length - 1];
  if (last === undefined || last.code !== OPCODE.returnK) throw new Error('bpf: the last instruction must be a return');
  if (out.length > BPF_MAX_INSTRUCTIONS) {
    throw new Error(`bpf: program has ${out.length} instructions, the kernel accepts at most ${BPF_MAX_INSTRUCTIONS}`);
  }
  return out;
}
