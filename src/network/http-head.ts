// HTTP/1.x proxy request heads: parse (strictly, with size limits) and rewrite for the upstream.
// Pure. Only the head is parsed; bodies and responses pass through as bytes, which is why the
// proxy forwards one request per client connection (see rewriteForOrigin).

import { canonicalHost, formatRequestHost } from './rules.js';

export const MAX_HEAD_BYTES = 16 * 1024;
export const MAX_HEADERS = 100;

export interface RequestHead {
  method: string;
  target: string;
  version: 'HTTP/1.0' | 'HTTP/1.1';
  headers: [name: string, value: string][];
  /** Bytes the head occupies in the input, including the blank line. */
  length: number;
}

export type HeadParse =
  | { kind: 'incomplete' }
  | { kind: 'ok'; head: RequestHead }
  | { kind: 'error'; status: 400 | 431 | 505; message: string };

const TOKEN = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;
const FIELD_VALUE = /^[\t\x20-\x7e\x80-\xff]*$/;

/** Find the end of the head: the first empty line (CRLF CRLF). */
function headEnd(buf: Buffer): number {
  const i = buf.indexOf('\r\n\r\n', 0, 'latin1');
  return i < 0 ? -1 : i + 4;
}

export function parseRequestHead(buf: Buffer): HeadParse {
  const end = headEnd(buf);
  if (end < 0) {
    if (buf.length > MAX_HEAD_BYTES) return { kind: 'error', status: 431, message: `request head larger than ${MAX_HEAD_BYTES} bytes` };
    // A bare LF line ending or a binary protocol would otherwise wait for the timeout.
    const firstLineEnd = buf.indexOf('\n');
    if (firstLineEnd >= 0 && (firstLineEnd === 0 || buf[firstLineEnd - 1] !== 0x0d)) {
      return { kind: 'error', status: 400, message: 'request line must end with CRLF' };
    }
    if (firstLineEnd < 0 && buf.length > 0 && !/^[A-Za-z]/.test(String.fromCharCode(buf[0]!))) {
      return { kind: 'error', status: 400, message: 'not an HTTP request' };
    }
    return { kind: 'incomplete' };
  }
  if (end > MAX_HEAD_BYTES) return { kind: 'error', status: 431, message: `request head larger than ${MAX_HEAD_BYTES} bytes` };
  const text = buf.toString('latin1', 0, end - 4);
  const lines = text.split('\r\n');
  const requestLine = lines[0]!;
  const parts = requestLine.split(' ');
  if (parts.length !== 3) return { kind: 'error', status: 400, message: 'malformed request line (expected "METHOD target HTTP/1.1")' };
  const [method, target, version] = parts as [string, string, string];
  if (!TOKEN.test(method)) return { kind: 'error', status: 400, message: 'malformed request method' };
  if (target.length === 0 || /[^\x21-\x7e]/.test(target)) return { kind: 'error', status: 400, message: 'malformed request target' };
  if (version !== 'HTTP/1.1' && version !== 'HTTP/1.0') {
    if (/^HTTP\/\d\.\d$/.test(version)) return { kind: 'error', status: 505, message: `${version} is not supported by the proxy; use HTTP/1.1` };
    return { kind: 'error', status: 400, message: 'malformed HTTP version' };
  }
  const headers: [string, string][] = [];
  for (let i = 1; i < lines.length; i++) {
    const line = lines[i]!;
    if (line.includes('\n') || line.includes('\r')) return { kind: 'error', status: 400, message: 'bare CR or LF in a header line' };
    if (line.startsWith(' ') || line.startsWith('\t')) return { kind: 'error', status: 400, message: 'folded header lines are not allowed' };
    const colon = line.indexOf(':');
    if (colon <= 0) return { kind: 'error', status: 400, message: 'malformed header line' };
    const name = line.slice(0, colon);
    if (!TOKEN.test(name)) return { kind: 'error', status: 400, message: 'malformed header name' };
    const value = line.slice(colon + 1).trim();
    if (!FIELD_VALUE.test(value)) return { kind: 'error', status: 400, message: `control characters in header ${name}` };
    headers.push([name, value]);
    if (headers.length > MAX_HEADERS) return { kind: 'error', status: 431, message: `more than ${MAX_HEADERS} header lines` };
  }
  return { kind: 'ok', head: { method, target, version, headers, length: end } };
}

export function headerValues(head: RequestHead, name: string): string[] {
  const lower = name.toLowerCase();
  return head.headers.filter(([n]) => n.toLowerCase() === lower).map(([, v]) => v);
}

/** Split a CONNECT authority `host:port` / `[v6]:port`. The port is required. */
export function parseAuthority(authority: string): { host: string; port: number } | { error: string } {
  let host: string;
  let portText: string;
  if (authority.startsWith('[')) {
    const close = authority.indexOf(']');
    if (close < 0 || authority[close + 1] !== ':') return { error: 'expected "[ipv6]:port"' };
    host = authority.slice(0, close + 1);
    portText = authority.slice(close + 2);
  } else {
    const colon = authority.lastIndexOf(':');
    if (colon <= 0) return { error: 'expected "host:port"' };
    host = authority.slice(0, colon);
    portText = authority.slice(colon + 1);
    if (host.includes(':')) return { error: 'IPv6 addresses must be in brackets' };
  }
  if (!/^[0-9]{1,5}$/.test(portText)) return { error: 'missing or malformed port' };
  const port = Number(portText);
  if (port < 1 || port > 65535) return { error: 'port out of range' };
  return { host, port };
}

export interface OriginTarget {
  host: string;
  port: number;
  /** Path and query, origin-form. */
  path: string;
  /** The Host header value to send. */
  authority: string;
}

/**
 * Absolute-form `http://host[:port]/path` (the only form a forward proxy accepts besides CONNECT).
 * Parsed strictly by hand: a URL parser would also decode percent-encoded hosts, which are
 * refused here instead. The host comes back canonical (lower case, IPv4 in dotted form).
 */
export function parseAbsoluteTarget(target: string): OriginTarget | { error: string } {
  if (!/^http:\/\//i.test(target)) {
    if (/^https:\/\//i.test(target)) return { error: 'https URLs must be requested with CONNECT' };
    if (target.startsWith('/')) return { error: 'this is a proxy: request an absolute URL (http://host/path) or use CONNECT' };
    return { error: 'only http:// URLs can be forwarded' };
  }
  const rest = target.slice(7);
  const end = rest.search(/[/?#]/);
  const authority = end < 0 ? rest : rest.slice(0, end);
  let path = end < 0 ? '/' : rest.slice(end);
  const hash = path.indexOf('#');
  if (hash >= 0) path = path.slice(0, hash);
  if (!path.startsWith('/')) path = '/' + path;
  if (authority.includes('@')) return { error: 'user names in proxied URLs are not supported' };
  if (authority.includes('%')) return { error: 'percent-encoded host names are not supported' };
  let hostText: string;
  let portText = '';
  if (authority.startsWith('[')) {
    const close = authority.indexOf(']');
    if (close < 0) return { error: 'malformed URL' };
    hostText = authority.slice(0, close + 1);
    const after = authority.slice(close + 1);
    if (after !== '') {
      if (!after.startsWith(':')) return { error: 'malformed URL' };
      portText = after.slice(1);
    }
  } else {
    const colon = authority.lastIndexOf(':');
    hostText = colon < 0 ? authority : authority.slice(0, colon);
    if (colon >= 0) portText = authority.slice(colon + 1);
  }
  if (hostText === '' || hostText === '[]') return { error: 'URL without a host' };
  let port = 80;
  if (portText !== '') {
    if (!/^[0-9]{1,5}$/.test(portText) || Number(portText) < 1 || Number(portText) > 65535) return { error: 'malformed port in URL' };
    port = Number(portText);
  }
  // Canonical when possible; otherwise as sent, for the proxy to refuse (and record) by rule.
  const canonical = canonicalHost(hostText);
  const host = 'error' in canonical ? hostText.toLowerCase() : formatRequestHost(canonical);
  return { host, port, path, authority: port === 80 ? host : `${host}:${port}` };
}

// Hop-by-hop headers (RFC 9110 §7.6.1) plus the proxy-only ones.
const HOP_BY_HOP = new Set(['connection', 'keep-alive', 'proxy-connection', 'proxy-authorization', 'proxy-authenticate', 'te', 'trailer', 'upgrade']);

/**
 * The head to send upstream for a forwarded plain-HTTP request. After the head, bytes are relayed
 * unparsed; so the upstream is asked to close after one response (`Connection: close`), and a
 * client cannot reuse this connection for a second host. Upgrade requests (WebSocket) keep their
 * Upgrade/Connection headers since the stream after the switch is opaque anyway.
 */
export function rewriteForOrigin(head: RequestHead, origin: OriginTarget): Buffer {
  const connectionTokens = headerValues(head, 'connection')
    .flatMap((v) => v.split(','))
    .map((t) => t.trim().toLowerCase())
    .filter(Boolean);
  const upgrade = connectionTokens.includes('upgrade') ? headerValues(head, 'upgrade')[0] : undefined;
  const lines = [`${head.method} ${origin.path} ${head.version}`, `Host: ${origin.authority}`];
  for (const [name, value] of head.headers) {
    const lower = name.toLowerCase();
    if (HOP_BY_HOP.has(lower) || lower === 'host' || connectionTokens.includes(lower)) continue;
    lines.push(`${name}: ${value}`);
  }
  if (upgrade !== undefined) {
    lines.push('Connection: Upgrade', `Upgrade: ${upgrade}`);
  } else {
    lines.push('Connection: close');
  }
  return Buffer.from(lines.join('\r\n') + '\r\n\r\n', 'latin1');
}

/** A complete, closing HTTP response with a short text body. */
export function simpleResponse(status: number, reasonPhrase: string, body: string, extraHeaders: [string, string][] = []): Buffer {
  const bodyBytes = Buffer.from(body.endsWith('\n') ? body : body + '\n', 'utf8');
  const phrase = reasonPhrase.replace(/[^\t\x20-\x7e]/g, '?');
  const lines = [
    `HTTP/1.1 ${status} ${phrase}`,
    'Content-Type: text/plain; charset=utf-8',
    `Content-Length: ${bodyBytes.length}`,
    'Connection: close',
    'Proxy-Connection: close',
    ...extraHeaders.map(([n, v]) => `${n}: ${v.replace(/[^\t\x20-\x7e]/g, '?')}`),
  ];
  return Buffer.concat([Buffer.from(lines.join('\r\n') + '\r\n\r\n', 'latin1'), bodyBytes]);
}
