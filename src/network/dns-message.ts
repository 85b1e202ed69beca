// The few DNS messages the in-sandbox resolver needs (RFC 1035): parse one question, build an
// answer. Pure.

export const DnsType = { A: 1, PTR: 12, AAAA: 28 } as const;
export const DnsRcode = { noError: 0, formErr: 1, servFail: 2, nxDomain: 3, notImp: 4, refused: 5 } as const;
const CLASS_IN = 1;

export interface DnsQuestion {
  id: number;
  /** Flags word of the query (opcode and RD are echoed). */
  flags: number;
  /** As sent, lower-cased, without the trailing dot. */
  name: string;
  type: number;
  qclass: number;
  /** The raw question section, echoed verbatim in the answer. */
  questionBytes: Buffer;
}

export type DnsParse = { kind: 'ok'; question: DnsQuestion } | { kind: 'error'; id: number | null; rcode: number; message: string };

export function parseQuery(msg: Buffer): DnsParse {
  if (msg.length < 12) return { kind: 'error', id: null, rcode: DnsRcode.formErr, message: 'short message' };
  const id = msg.readUInt16BE(0);
  const flags = msg.readUInt16BE(2);
  if (flags & 0x8000) return { kind: 'error', id: null, rcode: DnsRcode.formErr, message: 'not a query' };
  const opcode = (flags >> 11) & 0xf;
  if (opcode !== 0) return { kind: 'error', id, rcode: DnsRcode.notImp, message: `opcode ${opcode} not supported` };
  if (msg.readUInt16BE(4) !== 1) return { kind: 'error', id, rcode: DnsRcode.formErr, message: 'exactly one question expected' };
  const labels: string[] = [];
  let off = 12;
  for (let steps = 0; ; steps++) {
    if (off >= msg.length || steps > 128) return { kind: 'error', id, rcode: DnsRcode.formErr, message: 'truncated name' };
    const len = msg[off]!;
    if (len === 0) {
      off++;
      break;
    }
    // Compression pointers have no business in a question.
    if (len > 63) return { kind: 'error', id, rcode: DnsRcode.formErr, message: 'bad label' };
    if (off + 1 + len > msg.length) return { kind: 'error', id, rcode: DnsRcode.formErr, message: 'truncated label' };
    labels.push(msg.toString('latin1', off + 1, off + 1 + len));
    off += 1 + len;
  }
  if (off + 4 > msg.length) return { kind: 'error', id, rcode: DnsRcode.formErr, message: 'truncated question' };
  const type = msg.readUInt16BE(off);
  const qclass = msg.readUInt16BE(off + 2);
  return {
    kind: 'ok',
    question: { id, flags, name: labels.join('.').toLowerCase(), type, qclass, questionBytes: msg.subarray(12, off + 4) },
  };
}

function header(id: number, queryFlags: number, rcode: number, qd: number, an: number): Buffer {
  const h = Buffer.alloc(12);
  h.writeUInt16BE(id, 0);
  // QR=1, opcode echoed, AA=1 (we are the authority for the pool), RD echoed, RA=1.
  const flags = 0x8000 | (queryFlags & 0x7800) | 0x0400 | (queryFlags & 0x0100) | 0x0080 | (rcode & 0xf);
  h.writeUInt16BE(flags, 2);
  h.writeUInt16BE(qd, 4);
  h.writeUInt16BE(an, 6);
  return h;
}

export interface DnsAnswer {
  type: number;
  ttl: number;
  /** Record data (4 bytes for A; an encoded name for PTR). */
  data: Buffer;
}

export function buildResponse(q: DnsQuestion, rcode: number, answers: DnsAnswer[] = []): Buffer {
  const parts = [header(q.id, q.flags, rcode, 1, answers.length), q.questionBytes];
  for (const a of answers) {
    const rr = Buffer.alloc(12);
    rr.writeUInt16BE(0xc00c, 0); // pointer to the question name
    rr.writeUInt16BE(a.type, 2);
    rr.writeUInt16BE(CLASS_IN, 4);
    rr.writeUInt32BE(a.ttl, 6);
    rr.writeUInt16BE(a.data.length, 10);
    parts.push(rr, a.data);
  }
  return Buffer.concat(parts);
}

/** An answer to a message we could not parse (header only), or null when no id is known. */
export function buildError(id: number | null, rcode: number): Buffer | null {
  return id === null ? null : header(id, 0, rcode, 0, 0);
}

export function encodeName(name: string): Buffer {
  const parts: Buffer[] = [];
  for (const label of name.split('.').filter(Boolean)) {
    const b = Buffer.from(label, 'latin1');
    parts.push(Buffer.from([b.length]), b);
  }
  parts.push(Buffer.from([0]));
  return Buffer.concat(parts);
}

export { CLASS_IN };
