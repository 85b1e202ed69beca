// cordon's egress proxy. It runs in the host process and serves sockets created inside the
// sandbox's network namespace (it never listens by itself):
//   serveProxy        HTTP (absolute-form requests and CONNECT) and SOCKS5 on one listener
//   serveTransparent  plain TCP to a pool address handed out by serveDns
//   serveDns          the sandbox's resolver: allowed names -> pool addresses, denied -> NXDOMAIN
// Every connection is decided by name and port (rules.ts), resolved once on the host, filtered
// by the address guard, dialled by the checked address, and then relayed (relay.ts).

import { lookup } from 'node:dns/promises';
import type * as dgram from 'node:dgram';
import { EventEmitter } from 'node:events';
import * as net from 'node:net';

import { type IpAddress, parseIpAddress } from './ip.js';
import { chooseDialAddresses, localInterfaceAddresses } from './address-guard.js';
import { DnsRcode, DnsType, buildError, buildResponse, encodeName, parseQuery } from './dns-message.js';
import {
  type RequestHead,
  parseAbsoluteTarget,
  parseAuthority,
  parseRequestHead,
  rewriteForOrigin,
  simpleResponse,
} from './http-head.js';
import { DEFAULT_POOL, NamePool } from './name-pool.js';
import { type ByteEngine, type Relay, startRelay } from './relay.js';
import {
  type NetworkRules,
  type RequestHost,
  canonicalHost,
  compileRules,
  decide,
  decideName,
  formatRequestHost,
  patternMatches,
  printable,
} from './rules.js';
import { SocksReply, encodeReply, parseGreeting, parseRequest } from './socks5.js';

export type DenialProtocol = 'http' | 'connect' | 'socks5' | 'transparent' | 'dns';

/** One refused request, as recorded for the library result and the CLI's summary. */
export interface Denial {
  /** Printable host as requested (canonical when it could be parsed). */
  host: string;
  /** null for DNS queries, which carry no port. */
  port: number | null;
  /** The rule that decided, as written in the policy; null when no rule matched. */
  rule: string | null;
  /** Why, e.g. `example.org:443 is not in the network allow list`. */
  reason: string;
  /** How to allow it, e.g. `add --allow-domain example.org or network.allow in the policy`. */
  fix: string;
  protocol: DenialProtocol;
  /** Milliseconds since the epoch. */
  time: number;
}

export interface EgressProxyOptions {
  allow: string[];
  deny: string[];
  /** Resolve a name to addresses (default: the system resolver, all addresses). */
  resolve?: (host: string) => Promise<string[]>;
  /** Resolve + connect upstream, per connection (default 10 s). */
  connectTimeoutMs?: number;
  /** From accept until the request is complete (default 10 s). */
  handshakeTimeoutMs?: number;
  /** How allowed bytes flow: splice (native) when available, else JS (default 'auto'). */
  byteEngine?: ByteEngine | 'auto';
  /** The transparent path's address pool, inside 127.0.0.0/8 (default 127.80.0.0/16). */
  dnsPool?: string;
  /** This host's addresses, refused as upstreams (default: from the network interfaces). */
  hostAddresses?: () => string[];
}

export interface ProxyStats {
  /** Client connections accepted (all paths). */
  accepted: number;
  /** Connections relayed to an upstream. */
  relayed: number;
  denied: number;
  /** Sockets (client and upstream) currently open. */
  openSockets: number;
  /** Relays currently running. */
  activeRelays: number;
  bytesFromClients: number;
  bytesFromUpstreams: number;
}

const MAX_DENIALS = 10_000;
const DNS_TTL_SECONDS = 60;

class DialError extends Error {
  constructor(
    message: string,
    readonly kind: 'refused' | 'resolve' | 'connect' | 'timeout',
    readonly code: string | null,
    readonly rule: string | null = null,
    readonly fix: string = '',
  ) {
    super(message);
  }
}

/** One client's handshake on the proxy listener. */
interface Handshake {
  socket: net.Socket;
  reader: HandshakeReader;
  timedOut: boolean;
  /** The socket was handed on (to a relay, or to a closing answer); nothing else may close it. */
  settled: boolean;
  handshakeDone: () => void;
}

/** Accumulates a client's first bytes until a handshake parser is satisfied. */
class HandshakeReader {
  buf: Buffer = Buffer.alloc(0);
  private waiter: ((more: boolean) => void) | null = null;
  private finished = false;
  private readonly onData = (chunk: Buffer) => {
    this.buf = this.buf.length === 0 ? chunk : Buffer.concat([this.buf, chunk]);
    this.wake(true);
  };
  private readonly onEnd = () => {
    this.finished = true;
    this.wake(false);
  };

  constructor(private readonly socket: net.Socket) {
    socket.on('data', this.onData);
    socket.on('end', this.onEnd);
    socket.on('close', this.onEnd);
  }

  private wake(more: boolean): void {
    const w = this.waiter;
    this.waiter = null;
    w?.(more);
  }

  /** Resolves true when more bytes arrived, false when the client went away. */
  more(): Promise<boolean> {
    if (this.finished || this.socket.destroyed) return Promise.resolve(false);
    return new Promise((resolve) => (this.waiter = resolve));
  }

  /** Stop reading; the unconsumed bytes are returned (Node may buffer more, relay.ts takes those). */
  detach(consumed: number): Buffer {
    this.socket.off('data', this.onData);
    this.socket.off('end', this.onEnd);
    this.socket.off('close', this.onEnd);
    this.socket.pause();
    // Whoever still waits for bytes (e.g. after a timeout answered the client) gives up.
    this.finished = true;
    this.wake(false);
    return this.buf.subarray(consumed);
  }
}

function write(socket: net.Socket, data: Buffer): Promise<void> {
  if (data.length === 0 || socket.destroyed) return Promise.resolve();
  return new Promise((resolve) => socket.write(data, () => resolve()));
}

export class EgressProxy extends EventEmitter {
  readonly denials: Denial[] = [];
  /** Denials not kept in `denials` because it reached its size limit. */
  denialsDropped = 0;

  private readonly rules: NetworkRules;
  private readonly resolveName: (host: string) => Promise<string[]>;
  private readonly connectTimeoutMs: number;
  private readonly handshakeTimeoutMs: number;
  private readonly byteEngine: ByteEngine | 'auto';
  private readonly hostAddressesOf: () => IpAddress[];
  private readonly pool: NamePool;
  private readonly servers = new Set<net.Server>();
  private readonly dnsSockets = new Set<dgram.Socket>();
  private readonly sockets = new Set<net.Socket>();
  private readonly relays = new Set<Relay>();
  private readonly dnsDeniedNames = new Set<string>();
  private closed = false;
  private counters = { accepted: 0, relayed: 0, denied: 0, bytesFromClients: 0, bytesFromUpstreams: 0 };

  constructor(opts: EgressProxyOptions) {
    super();
    this.rules = compileRules(opts.allow ?? [], opts.deny ?? []);
    this.resolveName = opts.resolve ?? (async (host) => (await lookup(host, { all: true, verbatim: true })).map((a) => a.address));
    this.connectTimeoutMs = positive(opts.connectTimeoutMs, 10_000, 'connectTimeoutMs');
    this.handshakeTimeoutMs = positive(opts.handshakeTimeoutMs, 10_000, 'handshakeTimeoutMs');
    this.byteEngine = opts.byteEngine ?? 'auto';
    const hostAddresses = opts.hostAddresses;
    this.hostAddressesOf = hostAddresses
      ? () => hostAddresses().flatMap((a) => parseIpAddress(a) ?? [])
      : cachedHostAddresses();
    this.pool = new NamePool(opts.dnsPool ?? DEFAULT_POOL);
  }

  override on(event: 'denied', listener: (d: Denial) => void): this;
  override on(event: string | symbol, listener: (...args: any[]) => void): this;
  override on(event: string | symbol, listener: (...args: any[]) => void): this {
    return super.on(event, listener);
  }

  get stats(): ProxyStats {
    return { ...this.counters, openSockets: this.sockets.size, activeRelays: this.relays.size };
  }

  /** HTTP proxy (absolute-form and CONNECT) and SOCKS5 on one listener; the first byte decides. */
  serveProxy(server: net.Server): void {
    this.serve(server, (socket) => void this.handleProxyClient(socket));
  }

  /**
   * Plain TCP connections to pool addresses: the local address names the host (via serveDns),
   * the local port is the port. Anything else is closed at once.
   */
  serveTransparent(server: net.Server): void {
    this.serve(server, (socket) => void this.handleTransparentClient(socket));
  }

  /** The sandbox's DNS server: A answers from the pool for allowed names, NXDOMAIN otherwise. */
  serveDns(socket: dgram.Socket): void {
    if (this.closed) throw new Error('EgressProxy is closed');
    this.dnsSockets.add(socket);
    socket.on('error', () => {});
    socket.on('message', (msg, rinfo) => {
      const reply = this.answerDns(msg);
      if (reply && !this.closed) socket.send(reply, rinfo.port, rinfo.address, () => {});
    });
  }

  /** Stop serving, close every socket this proxy owns (and the servers it was given). */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const s of this.servers) s.close();
    for (const d of this.dnsSockets) {
      try {
        d.close();
      } catch {
        // already closed by its owner
      }
    }
    const relaysDone = [...this.relays].map((r) => {
      r.cancel();
      return r.done;
    });
    await Promise.allSettled(relaysDone);
    // A socket leaves the set on 'close', so every one still here has that event ahead of it.
    const closing = [...this.sockets].map(
      (s) =>
        new Promise<void>((resolve) => {
          s.once('close', () => resolve());
          s.destroy();
        }),
    );
    await Promise.all(closing);
  }

  // ---- plumbing ----------------------------------------------------------------------------

  private serve(server: net.Server, handler: (socket: net.Socket) => void): void {
    if (this.closed) throw new Error('EgressProxy is closed');
    this.servers.add(server);
    server.on('error', () => {});
    server.on('connection', (socket: net.Socket) => {
      if (this.closed) {
        socket.destroy();
        return;
      }
      this.counters.accepted++;
      this.adopt(socket);
      // Half-closes are forwarded, not answered by closing our side too.
      socket.allowHalfOpen = true;
      handler(socket);
    });
  }

  private adopt(socket: net.Socket): void {
    this.sockets.add(socket);
    socket.on('error', () => {});
    socket.once('close', () => this.sockets.delete(socket));
  }

  private record(d: Omit<Denial, 'time'>): Denial {
    const denial: Denial = { ...d, host: printable(d.host), time: Date.now() };
    this.counters.denied++;
    if (this.denials.length < MAX_DENIALS) this.denials.push(denial);
    else this.denialsDropped++;
    this.emit('denied', denial);
    return denial;
  }

  private relay(client: net.Socket, upstream: net.Socket): void {
    this.counters.relayed++;
    let r: Relay;
    try {
      r = startRelay(client, upstream, this.byteEngine);
    } catch {
      client.destroy();
      upstream.destroy();
      return;
    }
    this.relays.add(r);
    void r.done.then((s) => {
      this.relays.delete(r);
      this.counters.bytesFromClients += s.bytesFromClient;
      this.counters.bytesFromUpstreams += s.bytesFromUpstream;
    });
  }

  // ---- deciding and dialling ---------------------------------------------------------------

  /** Resolve (once), filter the addresses, and connect; throws DialError. */
  private async dial(host: RequestHost, port: number): Promise<net.Socket> {
    const deadline = Date.now() + this.connectTimeoutMs;
    const label = formatRequestHost(host);
    let addresses: string[];
    if (host.kind === 'ip') {
      addresses = [host.ip.text];
    } else {
      try {
        addresses = await withTimeout(this.resolveName(host.name), this.connectTimeoutMs);
      } catch (e) {
        const code = (e as { code?: string }).code ?? null;
        if (e instanceof TimeoutError) throw new DialError(`resolving ${label} timed out`, 'timeout', 'ETIMEDOUT');
        throw new DialError(`could not resolve ${label}${code ? ` (${code})` : ''}`, 'resolve', code);
      }
    }
    const choice = chooseDialAddresses(this.rules, label, addresses, port, this.hostAddressesOf());
    if (!choice.ok) {
      const a = choice.address;
      const fix =
        choice.rule !== null
          ? "the policy's network.deny list blocks that address"
          : a
            ? `to allow that address, add --allow-domain ${a.family === 6 ? `[${a.text}]` : a.text} or network.allow in the policy`
            : 'check the name';
      throw new DialError(choice.reason, 'refused', null, choice.rule, fix);
    }
    let lastError: DialError | null = null;
    for (const address of choice.addresses.slice(0, 8)) {
      const remaining = deadline - Date.now();
      if (remaining <= 0) break;
      try {
        return await this.connect(address.text, port, remaining);
      } catch (e) {
        lastError = e as DialError;
      }
    }
    throw lastError ?? new DialError(`connecting to ${label}:${port} timed out`, 'timeout', 'ETIMEDOUT');
  }

  private connect(address: string, port: number, timeoutMs: number): Promise<net.Socket> {
    return new Promise((resolve, reject) => {
      const socket = net.connect({ host: address, port, allowHalfOpen: true });
      this.adopt(socket);
      const timer = setTimeout(() => {
        socket.destroy();
        reject(new DialError(`connecting to ${address}:${port} timed out`, 'timeout', 'ETIMEDOUT'));
      }, timeoutMs);
      socket.once('connect', () => {
        clearTimeout(timer);
        // Paused before Node's first read: the relay gets every upstream byte.
        socket.pause();
        resolve(socket);
      });
      socket.once('error', (e: Error & { code?: string }) => {
        clearTimeout(timer);
        socket.destroy();
        const what = e.code === 'ECONNREFUSED' ? 'connection refused' : e.code ?? e.message;
        reject(new DialError(`could not connect to ${address}:${port}: ${what}`, 'connect', e.code ?? null));
      });
    });
  }

  /** The decision for a request; records and returns the denial when refused. */
  private check(host: RequestHost, port: number, protocol: DenialProtocol): Denial | null {
    const d = decide(this.rules, host, port);
    if (d.allowed) return null;
    const fix =
      d.rule === null
        ? `add --allow-domain ${formatRequestHost(host)} or network.allow in the policy`
        : `the policy's network.deny list blocks it`;
    return this.record({ host: formatRequestHost(host), port, rule: d.rule, reason: d.reason, fix, protocol });
  }

  // ---- HTTP and SOCKS5 on one listener -------------------------------------------------------

  private async handleProxyClient(socket: net.Socket): Promise<void> {
    const reader = new HandshakeReader(socket);
    let isHttp = true;
    const conn: Handshake = {
      socket,
      reader,
      timedOut: false,
      settled: false,
      handshakeDone: () => clearTimeout(timer),
    };
    const timer = setTimeout(() => {
      conn.timedOut = true;
      // A client that never finishes its request gets an answer if it spoke HTTP, then is gone.
      if (isHttp && reader.buf.length > 0 && !socket.destroyed) {
        conn.settled = true;
        this.finish(conn, simpleResponse(408, 'Request Timeout', 'cordon: the request was not completed in time'));
      } else {
        socket.destroy();
      }
    }, this.handshakeTimeoutMs);
    try {
      while (reader.buf.length === 0) if (!(await reader.more())) return;
      const first = reader.buf[0]!;
      if (first === 0x05) {
        isHttp = false;
        await this.handleSocks(conn);
      } else if (first === 0x04) {
        isHttp = false;
        // SOCKS4: "request rejected"; only SOCKS5 carries names reliably (socks5h://).
        this.finish(conn, Buffer.from([0x00, 0x5b, 0, 0, 0, 0, 0, 0]));
      } else {
        await this.handleHttp(conn);
      }
    } catch {
      socket.destroy();
    } finally {
      clearTimeout(timer);
      // Every way out of a handshake either handed the socket on (relay, answer) or ends it here:
      // a client that half-closed mid-request must not leave a socket behind.
      if (!conn.settled) socket.destroy();
    }
  }

  /** Send a last message and close without losing it (see lingeringClose). */
  private finish(conn: Handshake, last: Buffer): Promise<void> {
    conn.settled = true;
    conn.reader.detach(0);
    const socket = conn.socket;
    if (socket.destroyed) return Promise.resolve();
    return new Promise<void>((resolve) =>
      socket.end(last, () => {
        lingeringClose(socket);
        resolve();
      }),
    );
  }

  private async handleHttp(conn: Handshake): Promise<void> {
    const { socket, reader } = conn;
    let head: RequestHead;
    for (;;) {
      const parsed = parseRequestHead(reader.buf);
      if (parsed.kind === 'ok') {
        head = parsed.head;
        break;
      }
      if (parsed.kind === 'error') {
        const phrase = parsed.status === 431 ? 'Request Header Fields Too Large' : parsed.status === 505 ? 'HTTP Version Not Supported' : 'Bad Request';
        return this.reply(conn, parsed.status, phrase, `cordon proxy: ${parsed.message}`);
      }
      if (!(await reader.more()) || conn.timedOut) return;
    }
    conn.handshakeDone();

    const isConnect = head.method === 'CONNECT';
    let hostText: string;
    let port: number;
    let path = '';
    let authority = '';
    if (isConnect) {
      const a = parseAuthority(head.target);
      if ('error' in a) return this.reply(conn, 400, 'Bad Request', `cordon proxy: malformed CONNECT target: ${a.error}`);
      hostText = a.host;
      port = a.port;
    } else {
      const t = parseAbsoluteTarget(head.target);
      if ('error' in t) return this.reply(conn, 400, 'Bad Request', `cordon proxy: ${t.error}`);
      ({ host: hostText, port, path, authority } = t);
    }
    const protocol: DenialProtocol = isConnect ? 'connect' : 'http';
    const host = canonicalHost(hostText);
    if ('error' in host) {
      const d = this.record({ host: hostText, port, rule: null, reason: `invalid host: ${host.error}`, fix: 'request a valid host name or IP address', protocol });
      return this.refuseHttp(conn, d);
    }
    const denial = this.check(host, port, protocol);
    if (denial) return this.refuseHttp(conn, denial);

    let upstream: net.Socket;
    try {
      upstream = await this.dial(host, port);
    } catch (e) {
      return this.dialFailedHttp(conn, e, host, port, protocol);
    }
    if (socket.destroyed || this.closed) {
      upstream.destroy();
      return;
    }
    const leftover = reader.detach(head.length);
    this.counters.bytesFromClients += leftover.length;
    if (isConnect) {
      await write(socket, Buffer.from('HTTP/1.1 200 Connection established\r\n\r\n', 'latin1'));
      await write(upstream, leftover);
    } else {
      const rewritten = rewriteForOrigin(head, { host: hostText, port, path, authority });
      await write(upstream, leftover.length ? Buffer.concat([rewritten, leftover]) : rewritten);
    }
    if (socket.destroyed || upstream.destroyed) {
      upstream.destroy();
      return;
    }
    conn.settled = true;
    this.relay(socket, upstream);
  }

  private dialFailedHttp(conn: Handshake, e: unknown, host: RequestHost, port: number, protocol: DenialProtocol): Promise<void> {
    if (e instanceof DialError && e.kind === 'refused') {
      const d = this.record({ host: formatRequestHost(host), port, rule: e.rule, reason: e.message, fix: e.fix, protocol });
      return this.refuseHttp(conn, d);
    }
    const err = e instanceof DialError ? e : new DialError(String(e), 'connect', null);
    if (err.kind === 'timeout') return this.reply(conn, 504, 'Gateway Timeout', `cordon proxy: ${err.message}`);
    return this.reply(conn, 502, 'Bad Gateway', `cordon proxy: ${err.message}`);
  }

  private refuseHttp(conn: Handshake, d: Denial): Promise<void> {
    // The status line carries the reason too: for CONNECT most clients show only that line.
    return this.reply(conn, 403, `Forbidden by cordon: ${d.reason}`.slice(0, 200), `cordon: ${d.reason}; ${d.fix}`, [
      ['X-Proxy-Error', 'blocked-by-cordon'],
    ]);
  }

  private reply(conn: Handshake, status: number, phrase: string, body: string, headers: [string, string][] = []): Promise<void> {
    return this.finish(conn, simpleResponse(status, phrase, body, headers));
  }

  private async handleSocks(conn: Handshake): Promise<void> {
    const { socket, reader } = conn;
    let consumed: number;
    for (;;) {
      const g = parseGreeting(reader.buf);
      if (g.kind === 'ok') {
        // Only "no authentication": the listener is reachable from inside the sandbox alone.
        if (!g.methods.includes(0x00)) return void this.finish(conn, Buffer.from([0x05, 0xff]));
        consumed = g.length;
        break;
      }
      if (g.kind === 'error') return;
      if (!(await reader.more()) || conn.timedOut) return;
    }
    await write(socket, Buffer.from([0x05, 0x00]));
    let request: ReturnType<typeof parseRequest>;
    for (;;) {
      request = parseRequest(reader.buf.subarray(consumed));
      if (request.kind !== 'incomplete') break;
      if (!(await reader.more()) || conn.timedOut) return;
    }
    conn.handshakeDone();
    const refuse = (code: number) => this.finish(conn, encodeReply(code));
    if (request.kind === 'error') return refuse(request.reply);
    if (request.command !== 0x01) return refuse(SocksReply.commandNotSupported);
    const host = request.host;
    if ('error' in host) {
      this.record({ host: request.rawHost, port: request.port, rule: null, reason: `invalid host: ${host.error}`, fix: 'request a valid host name or IP address', protocol: 'socks5' });
      return refuse(SocksReply.notAllowedByRuleset);
    }
    if (this.check(host, request.port, 'socks5')) return refuse(SocksReply.notAllowedByRuleset);
    let upstream: net.Socket;
    try {
      upstream = await this.dial(host, request.port);
    } catch (e) {
      const err = e instanceof DialError ? e : new DialError(String(e), 'connect', null);
      if (err.kind === 'refused') {
        this.record({ host: formatRequestHost(host), port: request.port, rule: err.rule, reason: err.message, fix: err.fix, protocol: 'socks5' });
        return refuse(SocksReply.notAllowedByRuleset);
      }
      return refuse(socksCodeFor(err));
    }
    if (socket.destroyed || this.closed) {
      upstream.destroy();
      return;
    }
    const leftover = reader.detach(consumed + request.length);
    this.counters.bytesFromClients += leftover.length;
    await write(socket, encodeReply(SocksReply.succeeded));
    await write(upstream, leftover);
    if (socket.destroyed || upstream.destroyed) {
      upstream.destroy();
      return;
    }
    conn.settled = true;
    this.relay(socket, upstream);
  }

  // ---- transparent path ----------------------------------------------------------------------

  private async handleTransparentClient(socket: net.Socket): Promise<void> {
    // Node would start reading at once; the relay wants the bytes in the kernel.
    socket.pause();
    const local = (socket.localAddress ?? '').replace(/^::ffff:/, '');
    const port = socket.localPort ?? 0;
    const name = this.pool.nameFor(local);
    let host: RequestHost;
    if (name !== null) {
      host = { kind: 'name', name };
      if (this.check(host, port, 'transparent')) {
        socket.resetAndDestroy();
        return;
      }
    } else {
      // Not a pool address: a connection to a loopback address inside the sandbox. Only an
      // allow rule naming that address (e.g. `127.0.0.1:5432`) lets it through, to the same
      // address on the host; everything else is refused.
      const literal = canonicalHost(local);
      const allowedExplicitly =
        !('error' in literal) &&
        literal.kind === 'ip' &&
        decide(this.rules, literal, port).allowed &&
        this.rules.allow.some((p) => p.host.kind === 'address' && patternMatches(p, literal, port));
      if ('error' in literal || !allowedExplicitly) {
        this.record({
          host: local,
          port,
          rule: null,
          reason: `${local}:${port} is not an address cordon's resolver handed out`,
          fix: `connect by a host name that is in the network allow list, or allow the address explicitly (--allow-domain ${local}:${port})`,
          protocol: 'transparent',
        });
        socket.resetAndDestroy();
        return;
      }
      host = literal;
    }
    let upstream: net.Socket;
    try {
      upstream = await this.dial(host, port);
    } catch (e) {
      if (e instanceof DialError && e.kind === 'refused') {
        this.record({ host: formatRequestHost(host), port, rule: e.rule, reason: e.message, fix: e.fix, protocol: 'transparent' });
      }
      if (!socket.destroyed) socket.resetAndDestroy();
      return;
    }
    if (socket.destroyed || this.closed) {
      upstream.destroy();
      return;
    }
    this.relay(socket, upstream);
  }

  private answerDns(msg: Buffer): Buffer | null {
    const parsed = parseQuery(msg);
    if (parsed.kind === 'error') return buildError(parsed.id, parsed.rcode);
    const q = parsed.question;
    if (q.qclass !== 1) return buildResponse(q, DnsRcode.refused);
    if (q.type === DnsType.PTR && /\.(in-addr|ip6)\.arpa$/.test(q.name)) {
      const octets = q.name.split('.').slice(0, 4).reverse().join('.');
      const name = q.name.endsWith('.in-addr.arpa') ? this.pool.nameFor(octets) : null;
      if (name === null) return buildResponse(q, DnsRcode.nxDomain);
      return buildResponse(q, DnsRcode.noError, [{ type: DnsType.PTR, ttl: DNS_TTL_SECONDS, data: encodeName(name) }]);
    }
    const host = canonicalHost(q.name);
    if ('error' in host || host.kind !== 'name') {
      this.recordDns(printable(q.name), `invalid host name: ${'error' in host ? host.error : 'an IP address is not a name'}`, null, 'query a valid host name');
      return buildResponse(q, DnsRcode.nxDomain);
    }
    const d = decideName(this.rules, host.name);
    if (!d.allowed) {
      const fix = d.rule === null ? `add --allow-domain ${host.name} or network.allow in the policy` : `the policy's network.deny list blocks it`;
      this.recordDns(host.name, d.reason, d.rule, fix);
      return buildResponse(q, DnsRcode.nxDomain);
    }
    if (q.type !== DnsType.A) return buildResponse(q, DnsRcode.noError);
    const address = this.pool.addressFor(host.name);
    const data = Buffer.from(address.split('.').map(Number));
    return buildResponse(q, DnsRcode.noError, [{ type: DnsType.A, ttl: DNS_TTL_SECONDS, data }]);
  }

  /** Resolvers ask for A and AAAA and retry: one record per name is enough. */
  private recordDns(name: string, reason: string, rule: string | null, fix: string): void {
    if (this.dnsDeniedNames.has(name)) return;
    if (this.dnsDeniedNames.size < MAX_DENIALS) this.dnsDeniedNames.add(name);
    this.record({ host: name, port: null, rule, reason, fix, protocol: 'dns' });
  }
}

/**
 * Close after an error answer without losing it: closing a socket with unread request bytes
 * makes the kernel send a reset, which can destroy the answer in flight. So read and discard
 * until the client closes, for a bounded time.
 */
function lingeringClose(socket: net.Socket): void {
  if (socket.destroyed) return;
  const timer = setTimeout(() => socket.destroy(), 2000);
  timer.unref();
  socket.once('close', () => clearTimeout(timer));
  socket.once('end', () => socket.destroy());
  socket.on('data', () => {});
  socket.resume();
}

function socksCodeFor(e: DialError): number {
  if (e.kind === 'timeout') return SocksReply.ttlExpired;
  if (e.kind === 'resolve') return SocksReply.hostUnreachable;
  switch (e.code) {
    case 'ECONNREFUSED':
      return SocksReply.connectionRefused;
    case 'ENETUNREACH':
      return SocksReply.networkUnreachable;
    case 'EHOSTUNREACH':
      return SocksReply.hostUnreachable;
    default:
      return SocksReply.generalFailure;
  }
}

class TimeoutError extends Error {}

function withTimeout<T>(p: Promise<T>, ms: number): Promise<T> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new TimeoutError('timeout')), ms);
    p.then(
      (v) => {
        clearTimeout(timer);
        resolve(v);
      },
      (e) => {
        clearTimeout(timer);
        reject(e);
      },
    );
  });
}

function positive(value: number | undefined, fallback: number, name: string): number {
  if (value === undefined) return fallback;
  if (!Number.isFinite(value) || value <= 0) throw new Error(`EgressProxy: ${name} must be a positive number of milliseconds`);
  return value;
}

/** This host's addresses, re-read at most every few seconds (interfaces change rarely). */
function cachedHostAddresses(): () => IpAddress[] {
  let cached: IpAddress[] = [];
  let at = -Infinity;
  return () => {
    const now = Date.now();
    if (now - at > 5000) {
      cached = localInterfaceAddresses();
      at = now;
    }
    return cached;
  };
}
