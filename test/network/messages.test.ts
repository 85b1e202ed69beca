import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import { DnsRcode, DnsType, buildResponse, parseQuery } from '../../src/network/dns-message.js';
import {
  MAX_HEAD_BYTES,
  parseAbsoluteTarget,
  parseAuthority,
  parseRequestHead,
  rewriteForOrigin,
  simpleResponse,
} from '../../src/network/http-head.js';
import { NamePool } from '../../src/network/name-pool.js';
import { SocksReply, parseGreeting, parseRequest } from '../../src/network/socks5.js';
import { dnsQuery } from './helpers.js';

const head = (text: string) => parseRequestHead(Buffer.from(text, 'latin1'));

describe('HTTP request heads', () => {
  it('parses CONNECT and absolute-form requests, and waits for the blank line', () => {
    const c = head('CONNECT example.org:443 HTTP/1.1\r\nHost: example.org:443\r\n\r\nTLS...');
    assert.equal(c.kind, 'ok');
    assert.equal(c.kind === 'ok' && c.head.length, 'CONNECT example.org:443 HTTP/1.1\r\nHost: example.org:443\r\n\r\n'.length);
    assert.equal(head('GET http://a/ HTTP/1.1\r\nHost: a\r\n').kind, 'incomplete');
  });

  it('refuses malformed request lines, folded headers, bare LF and oversized heads', () => {
    const bad: [string, number][] = [
      ['CONNECT example.org:443\r\n\r\n', 400],
      ['CONNECT  example.org:443 HTTP/1.1\r\n\r\n', 400],
      ['GET http://a/ HTTP/2.0\r\n\r\n', 505],
      ['GET http://a/ HTTX/1.1\r\n\r\n', 400],
      ['GET http://a/ HTTP/1.1\r\nX: a\r\n folded\r\n\r\n', 400],
      ['GET http://a/ HTTP/1.1\r\nBad Header: a\r\n\r\n', 400],
      ['GET http://a/ HTTP/1.1\r\nX: a\x01b\r\n\r\n', 400],
      ['GET http://a/ HTTP/1.1\nHost: a\n\n', 400],
      ['\x16\x03\x01\x02\x00', 400],
      ['GET http://a/ HTTP/1.1\r\n' + 'X: ' + 'a'.repeat(MAX_HEAD_BYTES) + '\r\n\r\n', 431],
      ['GET http://a/ HTTP/1.1\r\n' + 'X: y\r\n'.repeat(101) + '\r\n', 431],
    ];
    for (const [text, status] of bad) {
      const r = head(text);
      assert.equal(r.kind, 'error', JSON.stringify(text.slice(0, 60)));
      assert.equal(r.kind === 'error' && r.status, status, JSON.stringify(text.slice(0, 60)));
    }
    // Without a blank line, a head that has grown past the limit is refused too (no unbounded buffer).
    const endless = head('GET http://a/ HTTP/1.1\r\n' + 'X: y\r\n'.repeat(3000));
    assert.equal(endless.kind === 'error' && endless.status, 431);
  });

  it('splits CONNECT authorities, requiring a port and brackets for IPv6', () => {
    assert.deepEqual(parseAuthority('example.org:443'), { host: 'example.org', port: 443 });
    assert.deepEqual(parseAuthority('[::1]:8443'), { host: '[::1]', port: 8443 });
    for (const bad of ['example.org', 'example.org:', ':443', '::1:443', 'example.org:99999', 'example.org:44x', '[::1]443']) {
      assert.ok('error' in parseAuthority(bad), bad);
    }
  });

  it('rewrites an absolute-form request to origin form with Connection: close', () => {
    const r = head('POST http://Allowed.test:8080/p?q=1 HTTP/1.1\r\nHost: evil.test\r\nProxy-Connection: keep-alive\r\nProxy-Authorization: x\r\nConnection: keep-alive, X-Secret\r\nX-Secret: 1\r\nContent-Length: 2\r\n\r\n');
    assert.equal(r.kind, 'ok');
    if (r.kind !== 'ok') return;
    const t = parseAbsoluteTarget(r.head.target);
    assert.ok(!('error' in t));
    if ('error' in t) return;
    assert.deepEqual([t.host, t.port, t.path, t.authority], ['allowed.test', 8080, '/p?q=1', 'allowed.test:8080']);
    const out = rewriteForOrigin(r.head, t).toString('latin1');
    assert.equal(out, 'POST /p?q=1 HTTP/1.1\r\nHost: allowed.test:8080\r\nContent-Length: 2\r\nConnection: close\r\n\r\n');
  });

  it('keeps Upgrade for WebSocket requests', () => {
    const r = head('GET http://a.test/ws HTTP/1.1\r\nHost: a.test\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n');
    assert.ok(r.kind === 'ok');
    if (r.kind !== 'ok') return;
    const t = parseAbsoluteTarget(r.head.target);
    if ('error' in t) return assert.fail(t.error);
    assert.match(rewriteForOrigin(r.head, t).toString(), /\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n$/);
  });

  it('parses absolute URLs by hand, strictly', () => {
    const ok = (t: string) => {
      const r = parseAbsoluteTarget(t);
      if ('error' in r) throw new Error(`${t}: ${r.error}`);
      return [r.host, r.port, r.path, r.authority];
    };
    assert.deepEqual(ok('http://Example.TEST'), ['example.test', 80, '/', 'example.test']);
    assert.deepEqual(ok('HTTP://a.test:8080?q=1#frag'), ['a.test', 8080, '/?q=1', 'a.test:8080']);
    assert.deepEqual(ok('http://[::1]:81/x'), ['[::1]', 81, '/x', '[::1]:81']);
    assert.deepEqual(ok('http://127.1/'), ['127.0.0.1', 80, '/', '127.0.0.1']);
    for (const [bad, why] of [
      ['http://%61llowed.test/', /percent-encoded/],
      ['http://user:pw@a.test/', /user names/],
      ['http://a.test:0/', /port/],
      ['http://a.test:99999/', /port/],
      ['http://a.test:x/', /port/],
      ['http:///path', /without a host/],
      ['http://[::1/', /malformed/],
    ] as const) {
      const r = parseAbsoluteTarget(bad);
      assert.ok('error' in r && why.test(r.error), `${bad}: ${JSON.stringify(r)}`);
    }
  });

  it('explains targets a forward proxy cannot serve', () => {
    assert.match((parseAbsoluteTarget('/index.html') as { error: string }).error, /absolute URL/);
    assert.match((parseAbsoluteTarget('https://a.test/') as { error: string }).error, /CONNECT/);
    assert.match((parseAbsoluteTarget('ftp://a.test/') as { error: string }).error, /http:\/\//);
    assert.equal(parseAbsoluteTarget('http://2852039166/').constructor, Object);
    assert.equal((parseAbsoluteTarget('http://2852039166/') as { host: string }).host, '169.254.169.254');
  });

  it('builds closing responses with a length and no control characters in headers', () => {
    const r = simpleResponse(403, 'Forbidden by cordon: a\r\nInjected: 1', 'body');
    const text = r.toString('latin1');
    assert.match(text, /^HTTP\/1\.1 403 Forbidden by cordon: a\?\?Injected: 1\r\n/);
    assert.match(text, /Content-Length: 5\r\n/);
  });
});

describe('SOCKS5 messages', () => {
  it('parses greetings and requests incrementally', () => {
    assert.equal(parseGreeting(Buffer.from([5])).kind, 'incomplete');
    assert.deepEqual(parseGreeting(Buffer.from([5, 2, 0, 2])), { kind: 'ok', methods: [0, 2], length: 4 });
    const name = Buffer.from('allowed.test');
    const req = Buffer.concat([Buffer.from([5, 1, 0, 3, name.length]), name, Buffer.from([0x01, 0xbb])]);
    assert.equal(parseRequest(req.subarray(0, req.length - 1)).kind, 'incomplete');
    const r = parseRequest(req);
    assert.ok(r.kind === 'ok');
    assert.deepEqual(r.kind === 'ok' && [r.command, r.host, r.port, r.length], [1, { kind: 'name', name: 'allowed.test' }, 443, req.length]);
  });

  it('flags names with NUL bytes, maximum-length names and unknown address types', () => {
    const nul = Buffer.from('allowed.test\u0000.evil.com', 'latin1');
    const r = parseRequest(Buffer.concat([Buffer.from([5, 1, 0, 3, nul.length]), nul, Buffer.from([0, 80])]));
    assert.ok(r.kind === 'ok' && 'error' in r.host);
    const long = Buffer.alloc(255, 'a');
    const l = parseRequest(Buffer.concat([Buffer.from([5, 1, 0, 3, 255]), long, Buffer.from([0, 80])]));
    assert.ok(l.kind === 'ok' && 'error' in l.host, '255-byte label is not a host name');
    const t = parseRequest(Buffer.from([5, 1, 0, 9, 0, 0, 0, 0, 0, 0]));
    assert.deepEqual(t.kind === 'error' && t.reply, SocksReply.addressTypeNotSupported);
    const v6 = parseRequest(Buffer.concat([Buffer.from([5, 1, 0, 4]), Buffer.from('00000000000000000000ffff7f000001', 'hex'), Buffer.from([0, 80])]));
    assert.ok(v6.kind === 'ok' && !('error' in v6.host) && v6.host.kind === 'ip' && v6.host.ip.text === '127.0.0.1', 'mapped folded');
  });
});

describe('DNS messages', () => {
  it('round-trips a query and an A answer', () => {
    const q = parseQuery(dnsQuery(0x1234, 'Allowed.Test', DnsType.A));
    assert.ok(q.kind === 'ok');
    if (q.kind !== 'ok') return;
    assert.equal(q.question.name, 'allowed.test');
    const resp = buildResponse(q.question, DnsRcode.noError, [{ type: DnsType.A, ttl: 60, data: Buffer.from([127, 80, 0, 1]) }]);
    assert.equal(resp.readUInt16BE(0), 0x1234);
    assert.equal(resp.readUInt16BE(2) & 0x8000, 0x8000, 'QR set');
    assert.equal(resp.readUInt16BE(6), 1, 'one answer');
    assert.deepEqual([...resp.subarray(resp.length - 4)], [127, 80, 0, 1]);
  });

  it('rejects short messages, responses, compression in questions and several questions', () => {
    assert.equal(parseQuery(Buffer.alloc(5)).kind, 'error');
    const resp = dnsQuery(1, 'a.test', 1);
    resp.writeUInt16BE(0x8000, 2);
    assert.equal(parseQuery(resp).kind, 'error');
    const ptr = Buffer.concat([dnsQuery(1, 'a.test', 1).subarray(0, 12), Buffer.from([0xc0, 0x0c, 0, 1, 0, 1])]);
    assert.equal(parseQuery(ptr).kind, 'error');
    const two = dnsQuery(1, 'a.test', 1);
    two.writeUInt16BE(2, 4);
    assert.equal(parseQuery(two).kind, 'error');
  });
});

describe('NamePool', () => {
  it('hands out stable loopback addresses and maps them back', () => {
    const pool = new NamePool('127.80.0.0/16');
    const a = pool.addressFor('a.test');
    assert.match(a, /^127\.80\.\d+\.\d+$/);
    assert.equal(pool.addressFor('a.test'), a);
    assert.notEqual(pool.addressFor('b.test'), a);
    assert.equal(pool.nameFor(a), 'a.test');
    assert.equal(pool.nameFor('127.80.99.99'), null);
    assert.equal(pool.nameFor('127.0.0.1'), null);
  });

  it('recycles the least recently used address when full, and never hands out 127.0.0.1', () => {
    assert.equal(new NamePool('127.0.0.0/29').addressFor('x'), '127.0.0.2');
    const pool = new NamePool('127.0.0.4/30');
    const a = pool.addressFor('a');
    const b = pool.addressFor('b');
    assert.deepEqual([a, b], ['127.0.0.5', '127.0.0.6']);
    pool.addressFor('a');
    const c = pool.addressFor('c');
    assert.equal(c, b, 'b was least recently used');
    assert.equal(pool.nameFor(c), 'c');
    assert.equal(pool.allocated, 2);
  });

  it('refuses pools outside 127.0.0.0/8', () => {
    assert.throws(() => new NamePool('10.0.0.0/16'), /invalid name pool "10\.0\.0\.0\/16": use an IPv4 prefix inside 127\.0\.0\.0\/8/);
  });
});
