// The broker ↔ runner protocol: length-prefixed JSON frames over a byte stream (the ACL-locked named
// pipe on Windows). A frame is a 32-bit little-endian byte length followed by that many bytes of
// UTF-8 JSON. Frames larger than the agreed maximum, non-JSON payloads and unknown message types
// end the session: the peer is not trusted to resynchronise.

import type { JobSpec, DesktopSpec, ProcessSpec, TokenSpec } from '../plan.js';

export const PROTOCOL_VERSION = 1;
export const DEFAULT_MAX_FRAME = 8 * 1024 * 1024;

export interface SpawnRequest {
  type: 'spawn';
  version: number;
  token: TokenSpec;
  job: JobSpec;
  desktop: Pick<DesktopSpec, 'name' | 'sddl'>;
  process: ProcessSpec;
  timeoutMs: number | null;
  /** DACL the runner puts on its own process so the child cannot open it. */
  runnerProcessSddl: string;
}

export type BrokerMessage =
  | SpawnRequest
  | { type: 'stdin'; data: string }
  | { type: 'stdin-close' }
  | { type: 'terminate'; reason: string };

export type RunnerMessage =
  | { type: 'ready'; pid: number }
  | { type: 'stdout'; data: string }
  | { type: 'stderr'; data: string }
  | { type: 'exit'; code: number; timedOut: boolean }
  | { type: 'error'; stage: string; code: number; message: string };

const BROKER_TYPES = new Set(['spawn', 'stdin', 'stdin-close', 'terminate']);
const RUNNER_TYPES = new Set(['ready', 'stdout', 'stderr', 'exit', 'error']);

export class ProtocolError extends Error {}

export function encodeFrame(message: unknown, maxFrame = DEFAULT_MAX_FRAME): Buffer {
  const body = Buffer.from(JSON.stringify(message), 'utf8');
  if (body.length > maxFrame) throw new ProtocolError(`frame of ${body.length} bytes exceeds the ${maxFrame}-byte limit`);
  const header = Buffer.alloc(4);
  header.writeUInt32LE(body.length, 0);
  return Buffer.concat([header, body]);
}

/** Incremental decoder: feed it chunks as they arrive, in any split. */
export class FrameDecoder {
  private buffered: Buffer = Buffer.alloc(0);
  private failed = false;

  constructor(private readonly maxFrame = DEFAULT_MAX_FRAME) {}

  push(chunk: Buffer): unknown[] {
    if (this.failed) throw new ProtocolError('the stream already failed');
    this.buffered = this.buffered.length === 0 ? chunk : Buffer.concat([this.buffered, chunk]);
    const out: unknown[] = [];
    while (this.buffered.length >= 4) {
      const length = this.buffered.readUInt32LE(0);
      if (length > this.maxFrame) {
        this.failed = true;
        throw new ProtocolError(`peer announced a ${length}-byte frame; the limit is ${this.maxFrame}`);
      }
      if (this.buffered.length < 4 + length) break;
      const body = this.buffered.subarray(4, 4 + length);
      this.buffered = this.buffered.subarray(4 + length);
      try {
        out.push(JSON.parse(body.toString('utf8')));
      } catch {
        this.failed = true;
        throw new ProtocolError('frame is not valid JSON');
      }
    }
    return out;
  }

  /** Bytes of an incomplete frame still held (a peer that closes mid-frame leaves some). */
  get pending(): number {
    return this.buffered.length;
  }
}

function check(message: unknown, allowed: Set<string>, who: string): void {
  if (typeof message !== 'object' || message === null || typeof (message as { type?: unknown }).type !== 'string') {
    throw new ProtocolError(`${who} sent a frame without a type`);
  }
  const type = (message as { type: string }).type;
  if (!allowed.has(type)) throw new ProtocolError(`${who} sent an unknown message type '${type}'`);
}

export function asBrokerMessage(message: unknown): BrokerMessage {
  check(message, BROKER_TYPES, 'broker');
  const m = message as BrokerMessage;
  if (m.type === 'spawn' && m.version !== PROTOCOL_VERSION) throw new ProtocolError(`broker speaks protocol ${m.version}; this runner speaks ${PROTOCOL_VERSION}`);
  return m;
}

export function asRunnerMessage(message: unknown): RunnerMessage {
  check(message, RUNNER_TYPES, 'runner');
  return message as RunnerMessage;
}
