import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import {
  formatIpv6,
  parseIpAddress,
  parseIpv4Loose,
  parseIpv4Strict,
  parseIpv6,
  parsePrefix,
  prefixContains,
} from '../../src/network/ip.js';

const v4 = (s: string) => {
  const b = parseIpv4Loose(s);
  return b ? [...b].join('.') : null;
};

describe('IPv4 in inet_aton spellings', () => {
  it('canonicalises every form libc accepts', () => {
    assert.equal(v4('2852039166'), '169.254.169.254');
    assert.equal(v4('127.1'), '127.0.0.1');
    assert.equal(v4('127.0.1'), '127.0.0.1');
    assert.equal(v4('0x7f.1'), '127.0.0.1');
    assert.equal(v4('0177.0.0.1'), '127.0.0.1');
    assert.equal(v4('0xA9FEA9FE'), '169.254.169.254');
    assert.equal(v4('10.0x10.0300'), '10.16.0.192');
    assert.equal(v4('0'), '0.0.0.0');
    assert.equal(v4('4294967295'), '255.255.255.255');
  });

  it('rejects what libc rejects', () => {
    for (const bad of ['4294967296', '256.1.1.1', '1.2.3.4.5', '1..2', '08.1.1.1', '0x1g', '', '1.2.3.256', 'a.b.c.d', '1.16777216']) {
      assert.equal(v4(bad), null, bad);
    }
  });

  it('strict parsing takes only plain dotted quads', () => {
    assert.ok(parseIpv4Strict('10.1.2.3'));
    for (const bad of ['10.1.2', '010.1.2.3', '1.2.3.4 ', '0x1.2.3.4']) assert.equal(parseIpv4Strict(bad), null, bad);
  });
});

describe('IPv6', () => {
  it('parses compressed forms and an IPv4 tail, formats per RFC 5952', () => {
    assert.equal(formatIpv6(parseIpv6('0:0:0:0:0:0:0:1')!), '::1');
    assert.equal(formatIpv6(parseIpv6('FD00:EC2:0:0:0:0:0:254')!), 'fd00:ec2::254');
    assert.equal(formatIpv6(parseIpv6('2001:db8:0:0:1:0:0:1')!), '2001:db8::1:0:0:1');
    assert.equal(formatIpv6(parseIpv6('64:ff9b::10.0.0.1')!), '64:ff9b::a00:1');
    assert.equal(formatIpv6(parseIpv6('::')!), '::');
  });

  it('rejects malformed text and zone ids', () => {
    for (const bad of [':::', '1:2:3:4:5:6:7:8:9', '12345::', 'fe80::1%eth0', '1::2::3', '::1.2.3', 'g::1', '1:2:3:4:5:6:7']) {
      assert.equal(parseIpv6(bad), null, bad);
    }
  });

  it('folds IPv4-mapped addresses to IPv4 (the address actually dialled)', () => {
    const a = parseIpAddress('::ffff:127.0.0.1')!;
    assert.equal(a.family, 4);
    assert.equal(a.text, '127.0.0.1');
    assert.equal(parseIpAddress('::ffff:7f00:1')!.text, '127.0.0.1');
  });
});

describe('prefixes', () => {
  it('matches by leading bits', () => {
    const p = parsePrefix('10.0.0.0/8')!;
    assert.ok(prefixContains(p, parseIpAddress('10.255.1.2')!));
    assert.ok(!prefixContains(p, parseIpAddress('11.0.0.1')!));
    const q = parsePrefix('fc00::/7')!;
    assert.ok(prefixContains(q, parseIpAddress('fd12::1')!));
    assert.ok(!prefixContains(q, parseIpAddress('fe00::1')!));
    assert.ok(!prefixContains(q, parseIpAddress('10.0.0.1')!), 'families never match each other');
    assert.ok(prefixContains(parsePrefix('0.0.0.0/0')!, parseIpAddress('8.8.8.8')!));
    assert.ok(prefixContains(parsePrefix('172.16.0.0/12')!, parseIpAddress('172.31.255.255')!));
    assert.ok(!prefixContains(parsePrefix('172.16.0.0/12')!, parseIpAddress('172.32.0.0')!));
  });

  it('rejects bad lengths', () => {
    assert.equal(parsePrefix('10.0.0.0/33'), null);
    assert.equal(parsePrefix('::/129'), null);
    assert.equal(parsePrefix('10.0.0.0/x'), null);
  });
});
