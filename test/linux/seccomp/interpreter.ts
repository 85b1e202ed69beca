// Test-only classic BPF interpreter for seccomp programs, written from the kernel's documented
// semantics (Documentation/networking/filter.rst, seccomp_filter.rst), independent of the
// assembler: it decodes raw bytes, so it checks the serialisation as well as the logic.

import { decodeProgram, type SockFilter } from '../../../src/linux/seccomp/bpf.js';

export interface SeccompInput {
  nr: number;
  arch: number;
  instructionPointer?: bigint;
  /** Up to six 64-bit arguments; missing ones are 0. */
  args?: readonly bigint[];
}

/** struct seccomp_data, little-endian, 64 bytes. */
export function seccompData(input: SeccompInput): Buffer {
  const buf = Buffer.alloc(64);
  buf.writeInt32LE(input.nr | 0, 0);
  buf.writeUInt32LE(input.arch >>> 0, 4);
  buf.writeBigUInt64LE(input.instructionPointer ?? 0n, 8);
  const args = input.args ?? [];
  if (args.length > 6) throw new Error('seccomp_data has six arguments');
  args.forEach((a, i) => buf.writeBigUInt64LE(BigInt.asUintN(64, a), 16 + 8 * i));
  return buf;
}

/** Validate the way the kernel does before accepting a filter (bpf_check_classic + seccomp_check_filter, for the opcodes we use). */
export function validate(program: SockFilter[]): void {
  if (program.length === 0 || program.length > 4096) throw new Error(`invalid length ${program.length}`);
  program.forEach((insn, pc) => {
    switch (insn.code) {
      case 0x20: // ld [k]
        if (insn.k >= 64 || insn.k % 4 !== 0) throw new Error(`pc ${pc}: load offset ${insn.k} outside seccomp_data`);
        break;
      case 0x54: // and #k
      case 0x06: // ret #k
        break;
      case 0x05: // ja
        if (pc + 1 + insn.k >= program.length) throw new Error(`pc ${pc}: ja out of range`);
        break;
      case 0x15:
      case 0x25:
      case 0x35:
      case 0x45:
        if (pc + 1 + insn.jt >= program.length || pc + 1 + insn.jf >= program.length) throw new Error(`pc ${pc}: branch out of range`);
        break;
      default:
        throw new Error(`pc ${pc}: unsupported opcode 0x${insn.code.toString(16)}`);
    }
  });
  if (program[program.length - 1]!.code !== 0x06) throw new Error('last instruction is not a return');
}

export interface RunResult {
  /** The 32-bit value the program returned. */
  ret: number;
  /** Instructions executed. */
  steps: number;
}

/** Run a serialised program on one seccomp_data. */
export function run(programBytes: Buffer, input: SeccompInput): RunResult {
  const program = decodeProgram(programBytes);
  validate(program);
  const data = seccompData(input);
  let a = 0;
  let pc = 0;
  // Jumps only go forward, so a program runs at most its length in steps; the bound guards bugs here.
  for (let steps = 1; steps <= program.length; steps++) {
    const insn = program[pc]!;
    switch (insn.code) {
      case 0x20:
        a = data.readUInt32LE(insn.k);
        pc++;
        break;
      case 0x54:
        a = (a & insn.k) >>> 0;
        pc++;
        break;
      case 0x06:
        return { ret: insn.k >>> 0, steps };
      case 0x05:
        pc += 1 + insn.k;
        break;
      default: {
        const k = insn.k >>> 0;
        const taken =
          insn.code === 0x15 ? a === k : insn.code === 0x25 ? a > k : insn.code === 0x35 ? a >= k : (a & k) !== 0;
        pc += 1 + (taken ? insn.jt : insn.jf);
      }
    }
  }
  throw new Error('program ran past its length');
}

export type Action =
  | { action: 'allow' }
  | { action: 'kill_process' }
  | { action: 'kill_thread' }
  | { action: 'errno'; errno: number }
  | { action: 'user_notif' }
  | { action: 'other'; ret: number };

/** Decode a seccomp return value. */
export function action(ret: number): Action {
  const r = ret >>> 0;
  if (r === 0x7fff0000) return { action: 'allow' };
  if (r === 0x80000000) return { action: 'kill_process' };
  if (r === 0) return { action: 'kill_thread' };
  if ((r & 0xffff0000) === 0x00050000) return { action: 'errno', errno: r & 0xffff };
  if (r === 0x7fc00000) return { action: 'user_notif' };
  return { action: 'other', ret: r };
}

/** Run and decode in one step. */
export function decide(programBytes: Buffer, input: SeccompInput): Action {
  return action(run(programBytes, input).ret);
}
