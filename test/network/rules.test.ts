import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import {
  type RequestHost,
  canonicalHost,
  compileRules,
  decide,
  decideName,
  parseDomainPattern,
  transparentPorts,
} from '../../src/network/rules.js';

function host(text: string): RequestHost {
  const h = canonicalHost(text);
  if ('error' in h) throw new Error(`test host ${text}: ${h.error}`);
  return h;
}

describe('parseDomainPattern', () => {
  it('accepts every documented form and canonicalises it', () => {
    const cases: [string, string][] = [
      ['Example.COM.', 'example.com'],
      ['*.example.com', '*.example.com'],
      ['api.example.com:443', 'api.example.com:443'],
      ['*', '*'],
      ['*:22', '*:22'],
      ['10.0.0.5', '10.0.0.5'],
      ['10.0.0.0/8', '10.0.0.0/8'],
      ['2852039166', '169.254.169.254'],
      ['127.1:8080', '127.0.0.1:8080'],
      ['[::1]', '[::1]'],
      ['[::1]:8080', '[::1]:8080'],
      ['[FD00::/8]', '[fd00::/8]'],
      ['bücher.example', 'xn--bcher-kva.example'],
      ['_service.example.com', '_service.example.com'],
    ];
    for (const [input, canonical] of cases) assert.equal(parseDomainPattern(input).canonical, canonical, input);
  });

  it('rejects junk with a one-line message naming the pattern and the fix', () => {
    const bad = [
      'https://example.com',
      'example.com/path',
      'exa mple.com',
      'example.com\u0000.evil',
      'ex*ample.com',
      '*.*.example.com',
      'example.com:0',
      'example.com:65536',
      'example.com:http',
      '::1',
      'fd00::1:443',
      '[::1',
      '[1.2.3.4]',
      '*.10.0.0.1',
      '256.1.1.1',
      '10.0.0.0/33',
      '-bad.example.com',
      'a'.repeat(64) + '.com',
      '',
      'user@example.com',
      'example.123',
    ];
    for (const p of bad) {
      assert.throws(
        () => parseDomainPattern(p),
        (e: Error) => {
          assert.ok(e.message.startsWith('invalid domain pattern "'), e.message);
          assert.ok(!e.message.includes('\n'), 'one line');
          assert.ok(!/[\u0000-\u001f]/.test(e.message), 'control characters are escaped in the message');
          assert.match(e.message, /example\.com|10\.0\.0\.5|\[::1\]/, 'says how to write a valid pattern');
          return true;
        },
        p,
      );
    }
  });

  it('compileRules names the field and index of a bad entry', () => {
    assert.throws(() => compileRules(['ok.example', 'bad pattern'], []), /^Error: network\.allow\[1\]: invalid domain pattern "bad pattern"/);
    assert.throws(() => compileRules([], ['http://x']), /^Error: network\.deny\[0\]:/);
  });
});

describe('canonicalHost (request side)', () => {
  it('maps every IPv4 spelling to one address', () => {
    for (const spelled of ['2852039166', '169.254.169.254', '0xa9.0xfe.0xa9.0xfe', '0251.0376.0251.0376', '169.254.43518', '[::ffff:169.254.169.254]']) {
      const h = host(spelled);
      assert.equal(h.kind, 'ip', spelled);
      assert.equal(h.kind === 'ip' && h.ip.text, '169.254.169.254', spelled);
    }
  });

  it('rejects control characters, spaces and malformed names', () => {
    for (const bad of ['allowed.test\u0000.evil.com', 'allowed.test\r\nX: y', 'a b', 'a..b', '-a.b', 'a'.repeat(254), 'example.123', 'ünicode.test', '1.2.3.4.5']) {
      assert.ok('error' in canonicalHost(bad), JSON.stringify(bad));
    }
  });
});

describe('decide', () => {
  const rules = compileRules(
    ['registry.npmjs.org', '*.github.com', 'pypi.org:443', '10.1.2.0/24', '[fd00:1::/32]:8080'],
    ['evil.github.com', '10.1.2.66', '*:25'],
  );

  it('allows exact names, strict subdomains and port-limited entries', () => {
    assert.equal(decide(rules, host('registry.npmjs.org'), 443).allowed, true);
    assert.equal(decide(rules, host('REGISTRY.npmjs.org.'), 80).allowed, true);
    assert.equal(decide(rules, host('api.github.com'), 443).allowed, true);
    assert.equal(decide(rules, host('a.b.github.com'), 443).allowed, true);
    assert.equal(decide(rules, host('pypi.org'), 443).allowed, true);
    assert.equal(decide(rules, host('10.1.2.3'), 22).allowed, true);
    assert.equal(decide(rules, host('[fd00:1:2::3]'), 8080).allowed, true);
  });

  it('denies the apex of a wildcard, other ports, lookalikes and unlisted hosts', () => {
    assert.equal(decide(rules, host('github.com'), 443).allowed, false, 'apex is not a strict subdomain');
    assert.equal(decide(rules, host('evilgithub.com'), 443).allowed, false);
    assert.equal(decide(rules, host('github.com.evil.org'), 443).allowed, false);
    assert.equal(decide(rules, host('pypi.org'), 80).allowed, false);
    assert.equal(decide(rules, host('registry.npmjs.org.evil'), 443).allowed, false);
    assert.equal(decide(rules, host('[fd00:1:2::3]'), 8081).allowed, false);
    const d = decide(rules, host('example.org'), 443);
    assert.deepEqual(d, { allowed: false, rule: null, reason: 'example.org:443 is not in the network allow list' });
  });

  it('lets deny win, for names, addresses and ports', () => {
    const d = decide(rules, host('evil.github.com'), 443);
    assert.equal(d.allowed, false);
    assert.equal(d.rule, 'evil.github.com');
    assert.equal(decide(rules, host('10.1.2.66'), 22).rule, '10.1.2.66');
    assert.equal(decide(rules, host('registry.npmjs.org'), 25).rule, '*:25');
  });

  it('never lets a name pattern match an IP literal, or an IP pattern a name', () => {
    const r = compileRules(['*.example.com', '127.0.0.1'], []);
    assert.equal(decide(r, host('127.0.0.1'), 80).allowed, true);
    assert.equal(decide(r, host('localhost'), 80).allowed, false);
  });

  it('decideName (resolver side) ignores ports of allow rules and of deny rules', () => {
    assert.equal(decideName(rules, 'pypi.org').allowed, true);
    assert.equal(decideName(rules, 'evil.github.com').allowed, false);
    assert.equal(decideName(rules, 'smtp.github.com').allowed, true, 'a port-only deny (*:25) does not hide the name');
    assert.equal(decideName(rules, 'example.org').allowed, false);
  });

  it('transparentPorts lists the ports allow rules name, plus 80 and 443', () => {
    assert.deepEqual(transparentPorts(rules), [80, 443, 8080]);
  });
});
