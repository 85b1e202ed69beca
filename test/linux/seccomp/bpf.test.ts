import { test } from 'node:test';
import assert from 'node:assert/strict';
import { BpfProgram, BPF_MAX_INSTRUCTIONS, decodeProgram, encodeProgram } from '../../../src/linux/seccomp/bpf.js';
import { run } from './interpreter.js';

const X86_64 = 0xc000003e;

test('serialises struct sock_filter as u16 code, u8 jt, u8 jf, u32 k, little-endian', () => {
  const bytes = new BpfProgram().loadWord(4).jeq(0xc000003e, undefined, 'no').ret(0x7fff0000).label('no').ret(0x80000000).toBuffer();
  assert.deepEqual(
    [...bytes],
    [
      0x20, 0x00, 0, 0, 0x04, 0x00, 0x00, 0x00, // ld [4]
      0x15, 0x00, 0, 1, 0x3e, 0x00, 0x00, 0xc0, // jeq #0xc000003e, +0, +1
      0x06, 0x00, 0, 0, 0x00, 0x00, 0xff, 0x7f, // ret #ALLOW
      0x06, 0x00, 0, 0, 0x00, 0x00, 0x00, 0x80, // ret #KILL_PROCESS
    ],
  );
  assert.deepEqual(encodeProgram(decodeProgram(bytes)), bytes);
});

test('labels resolve to relative offsets for jeq, jgt, jge, jset and ja', () => {
  const p = new BpfProgram()
    .loadWord(0)
    .jeq(1, 'one')
    .jgt(100, 'big')
    .jge(50, 'mid')
    .and(0xf)
    .jset(0x8, 'eight', 'small')
    .label('one').ret(1)
    .label('big').ret(2)
    .label('mid').ret(3)
    .label('eight').ret(4)
    .label('small').jump('end')
    .ret(99) // skipped by the ja
    .label('end').ret(5);
  const bytes = p.toBuffer();
  const cases: [number, number][] = [[1, 1], [101, 2], [50, 3], [8 + 16, 4], [7, 5], [16, 5]];
  for (const [nr, expected] of cases) assert.equal(run(bytes, { nr, arch: X86_64 }).ret, expected, `nr ${nr}`);
});

test('a branch further than 255 instructions goes through an inserted trampoline', () => {
  const p = new BpfProgram().loadWord(0).jeq(7, 'far', 'near').label('near');
  for (let i = 0; i < 300; i++) p.ret(1000 + i);
  p.label('far').ret(42);
  const bytes = p.toBuffer();
  const insns = decodeProgram(bytes);
  assert.ok(insns.every((i) => i.jt <= 255 && i.jf <= 255));
  assert.ok(insns.some((i) => i.code === 0x05), 'a ja trampoline was inserted');
  assert.equal(run(bytes, { nr: 7, arch: X86_64 }).ret, 42);
  assert.equal(run(bytes, { nr: 8, arch: X86_64 }).ret, 1000);
});

test('both branches far away, and chained far branches, still land on their labels', () => {
  const p = new BpfProgram().loadWord(0);
  for (let i = 0; i < 20; i++) p.jeq(i, `t${i}`);
  p.jump('fallthrough');
  for (let i = 0; i < 20; i++) {
    p.label(`t${i}`);
    for (let j = 0; j < 30; j++) p.ret(0xdead);
  }
  p.label('fallthrough').jge(1000, 'huge', 'notHuge');
  for (let j = 0; j < 400; j++) p.ret(0xbeef);
  p.label('huge').ret(7).label('notHuge').ret(8);
  const bytes = p.toBuffer();
  for (let i = 0; i < 20; i++) assert.equal(run(bytes, { nr: i, arch: X86_64 }).ret, 0xdead);
  assert.equal(run(bytes, { nr: 5000, arch: X86_64 }).ret, 7);
  assert.equal(run(bytes, { nr: 500, arch: X86_64 }).ret, 8);
});

test('refuses programs the kernel would refuse, with a message naming the problem', () => {
  assert.throws(() => new BpfProgram().loadWord(0).jeq(1, 'nowhere').ret(0).toBuffer(), /undefined/);
  assert.throws(() => new BpfProgram().label('x').ret(0).label('x'), /defined twice/);
  assert.throws(() => new BpfProgram().label('back').ret(0).loadWord(0).jeq(1, 'back').ret(0).toBuffer(), /backward/);
  assert.throws(() => new BpfProgram().loadWord(0).toBuffer(), /last instruction must be a return/);
  assert.throws(() => new BpfProgram().ret(-1), /unsigned 32-bit/);
  assert.throws(() => new BpfProgram().ret(2 ** 32), /unsigned 32-bit/);
  assert.throws(() => new BpfProgram().label('x@1'), /reserved/);
  const tooLong = new BpfProgram();
  for (let i = 0; i < BPF_MAX_INSTRUCTIONS + 1; i++) tooLong.ret(0);
  assert.throws(() => tooLong.toBuffer(), /at most 4096/);
  const justRight = new BpfProgram();
  for (let i = 0; i < BPF_MAX_INSTRUCTIONS; i++) justRight.ret(0);
  assert.equal(justRight.toBuffer().length, BPF_MAX_INSTRUCTIONS * 8);
});

test('a label at the very end marks no instruction and is rejected as a target', () => {
  assert.throws(() => new BpfProgram().loadWord(0).jeq(1, 'end').ret(0).label('end').toBuffer(), /marks no instruction/);
});
