import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import { checkAddress, chooseDialAddresses, classifyAddress, localInterfaceAddresses } from '../../src/network/address-guard.js';
import { parseIpAddress } from '../../src/network/ip.js';
import { compileRules } from '../../src/network/rules.js';

const ip = (s: string) => {
  const a = parseIpAddress(s);
  if (!a) throw new Error(`bad test address ${s}`);
  return a;
};

describe('classifyAddress', () => {
  it('names the special ranges', () => {
    const cases: [string, string][] = [
      ['127.0.0.1', 'loopback'],
      ['127.80.0.5', 'loopback'],
      ['0.0.0.0', 'unspecified'],
      ['10.3.4.5', 'private'],
      ['172.20.0.1', 'private'],
      ['192.168.1.1', 'private'],
      ['100.64.0.1', 'shared address space (CGNAT)'],
      ['169.254.1.1', 'link-local'],
      ['169.254.169.254', 'cloud metadata'],
      ['100.100.100.200', 'cloud metadata'],
      ['168.63.129.16', 'cloud metadata'],
      ['224.0.0.251', 'multicast'],
      ['255.255.255.255', 'broadcast'],
      ['240.0.0.1', 'reserved'],
      ['::', 'unspecified'],
      ['::1', 'loopback'],
      ['fe80::1', 'link-local'],
      ['fd12:3456::1', 'private'],
      ['fd00:ec2::254', 'cloud metadata'],
      ['ff02::1', 'multicast'],
    ];
    for (const [addr, cls] of cases) assert.equal(classifyAddress(ip(addr))?.cls, cls, addr);
  });

  it('judges IPv6 forms that carry an IPv4 by the IPv4', () => {
    assert.equal(classifyAddress(ip('::ffff:169.254.169.254'))?.cls, 'cloud metadata', 'mapped (folded to IPv4)');
    assert.equal(classifyAddress(ip('64:ff9b::169.254.169.254'))?.cls, 'cloud metadata', 'NAT64');
    assert.equal(classifyAddress(ip('64:ff9b::7f00:1'))?.cls, 'loopback', 'NAT64 of 127.0.0.1');
    assert.equal(classifyAddress(ip('2002:a00:1::1'))?.cls, 'private', '6to4 of 10.0.0.1');
    assert.equal(classifyAddress(ip('::127.0.0.1'))?.cls, 'loopback', 'IPv4-compatible');
    // Teredo stores the client IPv4 inverted: ~127.0.0.1 = 80ff:fffe.
    assert.equal(classifyAddress(ip('2001:0:4136:e378:8000:63bf:80ff:fffe'))?.cls, 'loopback', 'Teredo');
    assert.equal(classifyAddress(ip('64:ff9b::808:808')), null, 'NAT64 of a public address is fine');
  });

  it('leaves public addresses alone, but refuses this host\'s own', () => {
    assert.equal(classifyAddress(ip('8.8.8.8')), null);
    assert.equal(classifyAddress(ip('2606:4700::1111')), null);
    assert.equal(classifyAddress(ip('8.8.8.8'), [ip('8.8.8.8')])?.cls, 'this host');
  });

  it('reads this host\'s interface addresses (includes loopback)', () => {
    const own = localInterfaceAddresses().map((a) => a.text);
    assert.ok(own.includes('127.0.0.1'), own.join(','));
  });
});

describe('checkAddress / chooseDialAddresses', () => {
  it('refuses a special address unless an allow rule names it (or its prefix) explicitly', () => {
    const none = compileRules(['allowed.test'], []);
    const refused = checkAddress(none, '127.0.0.1', 80, []);
    assert.equal(refused.ok, false);
    assert.match(!refused.ok ? refused.reason : '', /loopback/);
    // Control: the same probe passes once the address is allowed, so the probe can see a pass.
    assert.equal(checkAddress(compileRules(['allowed.test', '127.0.0.1'], []), '127.0.0.1', 80, []).ok, true);
    assert.equal(checkAddress(compileRules(['allowed.test', '127.0.0.0/8'], []), '127.0.0.1', 80, []).ok, true);
    assert.equal(checkAddress(compileRules(['allowed.test', '127.0.0.1:8080'], []), '127.0.0.1', 80, []).ok, false, 'port-limited');
    assert.equal(checkAddress(compileRules(['*'], []), '10.0.0.1', 80, []).ok, false, '"*" is not an explicit address');
  });

  it('keeps deny rules on addresses, even over explicit allows and through NAT64', () => {
    const rules = compileRules(['*.example', '10.0.0.0/8'], ['10.9.0.0/16', '[fd00:ec2::/32]']);
    assert.equal(checkAddress(rules, '10.1.0.1', 443, []).ok, true);
    assert.equal(checkAddress(rules, '10.9.0.1', 443, []).ok, false);
    assert.equal(checkAddress(rules, '64:ff9b::a09:1', 443, []).ok, false, '64:ff9b::10.9.0.1');
  });

  it('filters a mixed answer, keeping order, and refuses when nothing is left', () => {
    const rules = compileRules(['rebind.test'], []);
    const mixed = chooseDialAddresses(rules, 'rebind.test', ['127.0.0.1', '93.184.215.14', '169.254.169.254', '93.184.215.14'], 443, []);
    assert.ok(mixed.ok);
    assert.deepEqual(mixed.ok && mixed.addresses.map((a) => a.text), ['93.184.215.14']);
    const bad = chooseDialAddresses(rules, 'rebind.test', ['169.254.169.254', '127.0.0.1'], 443, []);
    assert.equal(bad.ok, false);
    assert.match(!bad.ok ? bad.reason : '', /^rebind\.test resolves to 169\.254\.169\.254, a cloud metadata address \(.*\), refused unless allowed explicitly$/);
    assert.equal(chooseDialAddresses(rules, 'x', [], 443, []).ok, false);
    assert.equal(chooseDialAddresses(rules, 'x', ['not-an-ip'], 443, []).ok, false);
  });
});
