// cordon's egress proxy. It runs in the host process and serves sockets created inside the
// sandbox's network namespace (it never listens by itself):
//   serveProxy        HTTP (absolute-form requests and CONNECT) and SOCKS5 on one listener
//   serveTransparent  plain TCP to a pool address handed out by serveDns
//   serveDns          the sandbox's resolver: allowed names -> pool addresses, denied -> NXDOMAIN
// Every connection is decided here, in TypeScript, by name and port (rules.ts), resolved once on
// the host, filtered by the address guard, and dialled by the checked address only. The I/O
// around that decision (accepting, the handshake bytes, the relay) is client-conn.ts and
// relay.ts: the native addon where it is built, Node sockets otherwise.

import { lookup } from 'node:dns/promises';
import type * as dgram from 'node:dgram';
import { EventEmitter } from 'node:events';
import type * as net from 'node:net';

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
import { type ClientConn, NativeFront, SocketConn } from './client-conn.js';
import type { ByteEngine, DialRelay } from './relay.js';
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
  /** How allowed bytes flow: the native addon (C threads) when available, else Node streams (default 'auto'). */
  byteEngine?: ByteEngine | 'auto';
  /**
   * Accept connections in the native addon, on Node's event loop but without Node socket objects
   * (default true; needs the addon and a listening server with a descriptor). false: through
   * the server's 'connection' event.
   */
  nativeAccept?: boolean;
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
/** How long close() waits for relays and sockets to report their end. */
const CLOSE_WAIT_MS = 2000;
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
  conn: ClientConn;
  timedOut: boolean;
  /** The connection was handed on (to a relay, or to a closing answer); nothing else may close it. */
  settled: boolean;
  handshakeDone: () => void;
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
  private readonly nativeAccept: boolean;
  private readonly hostAddressesOf: () => IpAddress[];
  private readonly pool: NamePool;
  private readonly servers = new Set<net.Server>();
  private readonly fronts = new Set<NativeFront>();
  private readonly dnsSockets = new Set<dgram.Socket>();
  /** Client connections not yet closed (or handed to a relay that has not finished). */
  private readonly conns = new Set<ClientConn>();
  /** Upstream sockets the JS byte engine opened. */
  private readonly sockets = new Set<net.Socket>();
  private readonly relays = new Set<DialRelay>();
  private readonly dnsDeniedNames = new Set<string>();
  private readonly handshakes = new Map<Handshake, { deadline: number; onTimeout: () => void }>();
  private sweeper: NodeJS.Timeout | null = null;
  private closed = false;
  private counters = { accepted: 0, relayed: 0, denied: 0, bytesFromClients: 0, bytesFromUpstreams: 0 };

  constructor(opts: EgressProxyOptions) {
    super();
    this.rules = compileRules(opts.allow ?? [], opts.deny ?? []);
    this.resolveName = opts.resolve ?? (async (host) => (await lookup(host, { all: true, verbatim: true })).map((a) => a.address));
    this.connectTimeoutMs = positive(opts.connectTimeoutMs, 10_000, 'connectTimeoutMs');
    this.handshakeTimeoutMs = positive(opts.handshakeTimeoutMs, 10_000, 'handshakeTimeoutMs');
    this.byteEngine = opts.byteEngine ?? 'auto';
    this.nativeAccept = opts.nativeAccept ?? true;
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
    return { ...this.counters, openSockets: this.conns.size + this.sockets.size, activeRelays: this.relays.size };
  }

  /**
   * HTTP proxy (absolute-form and CONNECT) and SOCKS5 on one listener; the first byte decides.
   * The proxy takes the server over: with the native addon, its connections are accepted
   * outside Node (the server object is closed); otherwise through its 'connection' event.
   */
  serveProxy(server: net.Server): void {
    this.serve(server, false, (conn) => void this.handleProxyClient(conn));
  }

  /**
   * Plain TCP connections to pool addresses: the local address names the host (via serveDns),
   * the local port is the port. Anything else is reset at once.
   */
  serveTransparent(server: net.Server): void {
    this.serve(server, true, (conn) => void this.handleTransparentClient(conn));
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
    if (this.sweeper !== null) clearInterval(this.sweeper);
    this.sweeper = null;
    this.handshakes.clear();
    for (const s of this.servers) s.close();
    for (const d of this.dnsSockets) {
      try {
        d.close();
      } catch {
        // already closed by its owner
      }
    }
    for (const f of this.fronts) f.stop();
    this.fronts.clear();
    const relaysDone = [...this.relays].map((r) => {
      r.cancel();
      return r.done;
    });
    for (const c of [...this.conns]) c.reset();
    // Bounded: a relay or connection that never reports its end must not keep whoever closes the
    // proxy (a command's result, a session's close) waiting for ever.
    const bounded = async (p: Promise<unknown>) => {
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([p, new Promise((r) => (timer = setTimeout(r, CLOSE_WAIT_MS)))]);
      clearTimeout(timer);
    };
    await bounded(Promise.allSettled(relaysDone));
    await bounded(Promise.all([...this.conns].map((c) => c.closed)));
    // A socket leaves the set on 'close', so every one still here has that event ahead of it.
    await bounded(
      Promise.all(
        [...this.sockets].map(
          (s) =>
            new Promise<void>((resolve) => {
              s.once('close', () => resolve());
              s.destroy();
            }),
        ),
      ),
    );
  }

  // ---- plumbing ----------------------------------------------------------------------------

  private serve(server: net.Server, transparent: boolean, handler: (conn: ClientConn) => void): void {
    if (this.closed) throw new Error('EgressProxy is closed');
    const accept = (conn: ClientConn) => {
      if (this.closed) return conn.reset();
      this.counters.accepted++;
      this.conns.add(conn);
      void conn.closed.then(() => this.conns.delete(conn));
      handler(conn);
    };
    const front = this.byteEngine === 'js' || !this.nativeAccept ? null : NativeFront.take(server, transparent, accept);
    if (front) {
      this.fronts.add(front);
      return;
    }
    this.servers.add(server);
    server.on('error', () => {});
    server.on('connection', (socket: net.Socket) => accept(new SocketConn(socket, this.byteEngine, (s) => this.adopt(s))));
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

  /** Resolve a name (once) and keep the addresses the guard allows; throws DialError. */
  private async allowedAddresses(host: RequestHost, port: number): Promise<string[]> {
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
    return choice.addresses.map((a) => a.text);
  }

  /**
   * Resolve, filter, dial (the checked addresses only) and relay. Resolves to null once bytes
   * flow, or to the DialError that stopped it; in that case nothing was written to the client,
   * which still belongs to the caller.
   */
  private async forward(conn: ClientConn, consumed: number, host: RequestHost, port: number, toClient: Buffer, toUpstream: Buffer): Promise<DialError | null> {
    const started = Date.now();
    const label = `${formatRequestHost(host)}:${port}`;
    let addresses: string[];
    try {
      addresses = await this.allowedAddresses(host, port);
    } catch (e) {
      return e instanceof DialError ? e : new DialError(String(e), 'connect', null);
    }
    const timeoutMs = this.connectTimeoutMs - (Date.now() - started);
    if (timeoutMs <= 0) return new DialError(`connecting to ${label} timed out`, 'timeout', 'ETIMEDOUT');
    if (this.closed) return new DialError('the proxy is closing', 'connect', 'ECANCELED');
    let r: DialRelay;
    try {
      r = conn.forward(consumed, { addresses, port, timeoutMs, toClient, toUpstream });
    } catch (e) {
      return new DialError(`could not connect to ${label}: ${(e as Error).message}`, 'connect', null);
    }
    this.relays.add(r);
    void r.done.then((stats) => {
      this.relays.delete(r);
      this.counters.bytesFromClients += stats.bytesFromClient;
      this.counters.bytesFromUpstreams += stats.bytesFromUpstream;
    });
    const outcome = await r.connected;
    if (outcome.ok) {
      this.counters.relayed++;
      return null;
    }
    const where = addresses.length === 1 && addresses[0] !== formatRequestHost(host) ? ` (${addresses[0]})` : '';
    if (outcome.code === 'ETIMEDOUT') return new DialError(`connecting to ${label}${where} timed out`, 'timeout', 'ETIMEDOUT');
    const what = outcome.code === 'ECONNREFUSED' ? 'connection refused' : outcome.code;
    return new DialError(`could not connect to ${label}${where}: ${what}`, 'connect', outcome.code);
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

  private async handleProxyClient(conn: ClientConn): Promise<void> {
    let isHttp = true;
    const hs: Handshake = { conn, timedOut: false, settled: false, handshakeDone: () => this.unwatch(hs) };
    this.watch(hs, () => {
      hs.timedOut = true;
      hs.settled = true;
      // A client that never finishes its request gets an answer if it spoke HTTP, then is gone.
      if (isHttp && conn.buffered.length > 0) conn.finish(simpleResponse(408, 'Request Timeout', 'cordon: the request was not completed in time'));
      else conn.reset();
    });
    try {
      while (conn.buffered.length === 0) if (!(await conn.more()) || hs.timedOut) return;
      const first = conn.buffered[0]!;
      if (first === 0x05) {
        isHttp = false;
        await this.handleSocks(hs);
      } else if (first === 0x04) {
        isHttp = false;
        // SOCKS4: "request rejected"; only SOCKS5 carries names reliably (socks5h://).
        this.finish(hs, Buffer.from([0x00, 0x5b, 0, 0, 0, 0, 0, 0]));
      } else {
        await this.handleHttp(hs);
      }
    } catch {
      if (!hs.settled) {
        hs.settled = true;
        conn.reset();
      }
    } finally {
      this.unwatch(hs);
      // Every way out of a handshake either handed the connection on (relay, answer) or ends it
      // here: a client that half-closed mid-request must not leave a socket behind.
      if (!hs.settled) conn.reset();
    }
  }

  /**
   * Handshake deadlines. One sweeping timer serves them all: a timer per connection costs more
   * than the rest of the decision, and a deadline only needs to be roughly on time.
   */
  private watch(hs: Handshake, onTimeout: () => void): void {
    this.handshakes.set(hs, { deadline: Date.now() + this.handshakeTimeoutMs, onTimeout });
    if (this.sweeper === null) {
      this.sweeper = setInterval(() => this.sweep(), Math.max(10, Math.min(250, this.handshakeTimeoutMs / 4)));
      this.sweeper.unref();
    }
  }

  private unwatch(hs: Handshake): void {
    this.handshakes.delete(hs);
  }

  private sweep(): void {
    const now = Date.now();
    for (const [hs, w] of this.handshakes) {
      if (w.deadline > now) continue;
      this.handshakes.delete(hs);
      w.onTimeout();
    }
    if (this.handshakes.size === 0 && this.sweeper !== null) {
      clearInterval(this.sweeper);
      this.sweeper = null;
    }
  }

  /** Send a last message and close without losing it. */
  private finish(hs: Handshake, last: Buffer): void {
    hs.settled = true;
    hs.conn.finish(last);
  }

  private async handleHttp(hs: Handshake): Promise<void> {
    const { conn } = hs;
    let head: RequestHead;
    for (;;) {
      const parsed = parseRequestHead(conn.buffered);
      if (parsed.kind === 'ok') {
        head = parsed.head;
        break;
      }
      if (parsed.kind === 'error') {
        const phrase = parsed.status === 431 ? 'Request Header Fields Too Large' : parsed.status === 505 ? 'HTTP Version Not Supported' : 'Bad Request';
        return this.reply(hs, parsed.status, phrase, `cordon proxy: ${parsed.message}`);
      }
      if (!(await conn.more()) || hs.timedOut) return;
    }
    hs.handshakeDone();

    const isConnect = head.method === 'CONNECT';
    let hostText: string;
    let port: number;
    let path = '';
    let authority = '';
    if (isConnect) {
      const a = parseAuthority(head.target);
      if ('error' in a) return this.reply(hs, 400, 'Bad Request', `cordon proxy: malformed CONNECT target: ${a.error}`);
      hostText = a.host;
      port = a.port;
    } else {
      const t = parseAbsoluteTarget(head.target);
      if ('error' in t) return this.reply(hs, 400, 'Bad Request', `cordon proxy: ${t.error}`);
      ({ host: hostText, port, path, authority } = t);
    }
    const protocol: DenialProtocol = isConnect ? 'connect' : 'http';
    const host = canonicalHost(hostText);
    if ('error' in host) {
      const d = this.record({ host: hostText, port, rule: null, reason: `invalid host: ${host.error}`, fix: 'request a valid host name or IP address', protocol });
      return this.refuseHttp(hs, d);
    }
    const denial = this.check(host, port, protocol);
    if (denial) return this.refuseHttp(hs, denial);

    const toClient = isConnect ? Buffer.from('HTTP/1.1 200 Connection established\r\n\r\n', 'latin1') : Buffer.alloc(0);
    const toUpstream = isConnect ? Buffer.alloc(0) : rewriteForOrigin(head, { host: hostText, port, path, authority });
    const failure = await this.forward(conn, head.length, host, port, toClient, toUpstream);
    if (failure === null) {
      hs.settled = true;
      return;
    }
    return this.dialFailedHttp(hs, failure, host, port, protocol);
  }

  private dialFailedHttp(hs: Handshake, e: DialError, host: RequestHost, port: number, protocol: DenialProtocol): void {
    if (e.kind === 'refused') {
      const d = this.record({ host: formatRequestHost(host), port, rule: e.rule, reason: e.message, fix: e.fix, protocol });
      return this.refuseHttp(hs, d);
    }
    if (e.kind === 'timeout') return this.reply(hs, 504, 'Gateway Timeout', `cordon proxy: ${e.message}`);
    return this.reply(hs, 502, 'Bad Gateway', `cordon proxy: ${e.message}`);
  }

  private refuseHttp(hs: Handshake, d: Denial): void {
    // The status line carries the reason too: for CONNECT most clients show only that line.
    return this.reply(hs, 403, `Forbidden by cordon: ${d.reason}`.slice(0, 200), `cordon: ${d.reason}; ${d.fix}`, [
      ['X-Proxy-Error', 'blocked-by-cordon'],
    ]);
  }

  private reply(hs: Handshake, status: number, phrase: string, body: string, headers: [string, string][] = []): void {
    this.finish(hs, simpleResponse(status, phrase, body, headers));
  }

  private async handleSocks(hs: Handshake): Promise<void> {
    const { conn } = hs;
    let consumed: number;
    for (;;) {
      const g = parseGreeting(conn.buffered);
      if (g.kind === 'ok') {
        // Only "no authentication": the listener is reachable from inside the sandbox alone.
        if (!g.methods.includes(0x00)) return this.finish(hs, Buffer.from([0x05, 0xff]));
        consumed = g.length;
        break;
      }
      if (g.kind === 'error') return;
      if (!(await conn.more()) || hs.timedOut) return;
    }
    conn.send(Buffer.from([0x05, 0x00]));
    let request: ReturnType<typeof parseRequest>;
    for (;;) {
      request = parseRequest(conn.buffered.subarray(consumed));
      if (request.kind !== 'incomplete') break;
      if (!(await conn.more()) || hs.timedOut) return;
    }
    hs.handshakeDone();
    const refuse = (code: number) => this.finish(hs, encodeReply(code));
    if (request.kind === 'error') return refuse(request.reply);
    if (request.command !== 0x01) return refuse(SocksReply.commandNotSupported);
    const host = request.host;
    if ('error' in host) {
      this.record({ host: request.rawHost, port: request.port, rule: null, reason: `invalid host: ${host.error}`, fix: 'request a valid host name or IP address', protocol: 'socks5' });
      return refuse(SocksReply.notAllowedByRuleset);
    }
    if (this.check(host, request.port, 'socks5')) return refuse(SocksReply.notAllowedByRuleset);
    const failure = await this.forward(conn, consumed + request.length, host, request.port, encodeReply(SocksReply.succeeded), Buffer.alloc(0));
    if (failure === null) {
      hs.settled = true;
      return;
    }
    if (failure.kind === 'refused') {
      this.record({ host: formatRequestHost(host), port: request.port, rule: failure.rule, reason: failure.message, fix: failure.fix, protocol: 'socks5' });
      return refuse(SocksReply.notAllowedByRuleset);
    }
    return refuse(socksCodeFor(failure));
  }

  // ---- transparent path ----------------------------------------------------------------------

  private async handleTransparentClient(conn: ClientConn): Promise<void> {
    const local = conn.localAddress.replace(/^::ffff:/, '');
    const port = conn.localPort;
    const name = this.pool.nameFor(local);
    let host: RequestHost;
    if (name !== null) {
      host = { kind: 'name', name };
      if (this.check(host, port, 'transparent')) return conn.reset();
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
        return conn.reset();
      }
      host = literal;
    }
    const failure = await this.forward(conn, 0, host, port, Buffer.alloc(0), Buffer.alloc(0));
    if (failure === null) return;
    if (failure.kind === 'refused') {
      this.record({ host: formatRequestHost(host), port, rule: failure.rule, reason: failure.message, fix: failure.fix, protocol: 'transparent' });
    }
    conn.reset();
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
