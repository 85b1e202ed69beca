// SOCKS5 (RFC 1928) greeting and CONNECT request: parse and encode. Pure.

import { ipv4, ipv6, isIpv4Mapped } from './ip.js';
import { type RequestHost, canonicalHost } from './rules.js';

export const SOCKS_VERSION = 5;

export const SocksReply = {
  succeeded: 0x00,
  generalFailure: 0x01,
  notAllowedByRuleset: 0x02,
  networkUnreachable: 0x03,
  hostUnreachable: 0x04,
  connectionRefused: 0x05,
  ttlExpired: 0x06,
  commandNotSupported: 0x07,
  addressTypeNotSupported: 0x08,
} as const;

export type Greeting =
  | { kind: 'incomplete' }
  | { kind: 'ok'; methods: number[]; length: number }
  | { kind: 'error'; message: string };

export function parseGreeting(buf: Buffer): Greeting {
  if (buf.length < 2) return { kind: 'incomplete' };
  if (buf[0] !== SOCKS_VERSION) return { kind: 'error', message: `unsupported SOCKS version ${buf[0]}` };
  const n = buf[1]!;
  if (n === 0) return { kind: 'error', message: 'SOCKS greeting offers no authentication method' };
  if (buf.length < 2 + n) return { kind: 'incomplete' };
  return { kind: 'ok', methods: [...buf.subarray(2, 2 + n)], length: 2 + n };
}

export type SocksRequest =
  | { kind: 'incomplete' }
  | {
      kind: 'ok';
      command: number;
      /** Canonical host, or why the bytes are not a usable host. */
      host: RequestHost | { error: string };
      /** The host as sent, for messages (may contain anything; print with printable()). */
      rawHost: string;
      port: number;
      length: number;
    }
  | { kind: 'error'; reply: number; message: string };

export function parseRequest(buf: Buffer): SocksRequest {
  if (buf.length < 5) return { kind: 'incomplete' };
  if (buf[0] !== SOCKS_VERSION) return { kind: 'error', reply: SocksReply.generalFailure, message: `unsupported SOCKS version ${buf[0]}` };
  const command = buf[1]!;
  const atyp = buf[3]!;
  let hostEnd: number;
  let host: RequestHost | { error: string };
  let rawHost: string;
  if (atyp === 0x01) {
    hostEnd = 4 + 4;
    if (buf.length < hostEnd + 2) return { kind: 'incomplete' };
    const ip = ipv4(buf.subarray(4, 8));
    host = { kind: 'ip', ip };
    rawHost = ip.text;
  } else if (atyp === 0x04) {
    hostEnd = 4 + 16;
    if (buf.length < hostEnd + 2) return { kind: 'incomplete' };
    const bytes = buf.subarray(4, 20);
    const ip = isIpv4Mapped(bytes) ? ipv4(bytes.subarray(12)) : ipv6(bytes);
    host = { kind: 'ip', ip };
    rawHost = ip.text;
  } else if (atyp === 0x03) {
    const len = buf[4]!;
    hostEnd = 5 + len;
    if (buf.length < hostEnd + 2) return { kind: 'incomplete' };
    // latin1 keeps every byte visible (NUL, high bytes) so canonicalHost can refuse it.
    rawHost = buf.toString('latin1', 5, hostEnd);
    host = len === 0 ? { error: 'empty host name' } : canonicalHost(rawHost);
  } else {
    return { kind: 'error', reply: SocksReply.addressTypeNotSupported, message: `unsupported SOCKS address type ${atyp}` };
  }
  const port = buf.readUInt16BE(hostEnd);
  return { kind: 'ok', command, host, rawHost, port, length: hostEnd + 2 };
}

/** A reply with a zero bound address (clients do not use it for CONNECT). */
export function encodeReply(code: number): Buffer {
  return Buffer.from([SOCKS_VERSION, code, 0x00, 0x01, 0, 0, 0, 0, 0, 0]);
}
