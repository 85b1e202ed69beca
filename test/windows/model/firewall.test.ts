// Firewall rule evaluation, and cordon's offline rules evaluated over every TCP port.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { type FirewallOptions, evaluateOutbound, isLoopback, parseIp } from '../../../src/windows/model/firewall.js';
import { type Token, createRestrictedToken } from '../../../src/windows/model/token.js';
import { offlineFirewallRules, portComplement } from '../../../src/windows/plan.js';
import { SID } from '../../../src/windows/sids.js';
import type { FirewallRule } from '../../../src/windows/types.js';

const OFFLINE = 'S-1-5-21-1-2-3-1005';
const OTHER = 'S-1-5-21-1-2-3-1001';
const FENCE = 'S-1-5-21-7-7-7-7';
const CAP = 'S-1-5-21-9-9-9-9';
const on: FirewallOptions = { filtersLoopback: true, restrictingSidsInUserMatch: true };

function user(sid: string): Token {
  return {
    user: sid, userDenyOnly: false, groups: [{ sid: SID.Everyone, enabled: true, denyOnly: false }], restrictingSids: [], writeRestricted: false,
    privileges: new Map(), defaultOwner: sid, defaultDacl: null, label: sid,
  };
}

const rule = (r: Partial<FirewallRule>): FirewallRule => ({ name: 'r', direction: 'out', action: 'block', enabled: true, protocol: 'any', remoteAddresses: 'any', remotePorts: 'any', ...r });
const tcp = (token: Token, host: string, port: number) => ({ token, protocol: 'tcp' as const, remoteAddress: host, remotePort: port });

describe('rule evaluation (MS-FASP 2.2.34)', () => {
  it('block beats allow; no match falls back to the default outbound allow', () => {
    const rules = [rule({ name: 'allow', action: 'allow' }), rule({ name: 'block', remotePorts: ['443'] })];
    assert.equal(evaluateOutbound(rules, tcp(user(OTHER), '1.2.3.4', 443), on).allowed, false);
    assert.equal(evaluateOutbound(rules, tcp(user(OTHER), '1.2.3.4', 80), on).rule, 'allow');
    assert.equal(evaluateOutbound([], tcp(user(OTHER), '1.2.3.4', 80), on).allowed, true);
  });

  it('a local-user condition scopes the rule to tokens the SDDL grants', () => {
    const rules = [rule({ localUserSddl: `O:LSD:(A;;CC;;;${OFFLINE})` })];
    assert.equal(evaluateOutbound(rules, tcp(user(OFFLINE), '1.2.3.4', 443), on).allowed, false);
    assert.equal(evaluateOutbound(rules, tcp(user(OTHER), '1.2.3.4', 443), on).allowed, true);
  });

  it('a write-restricted child matches only if its restricting SIDs also pass, when they are consulted', () => {
    const child = createRestrictedToken(user(OFFLINE), { writeRestricted: true, restrictingSids: [CAP, FENCE] });
    const onlyUser = [rule({ localUserSddl: `O:LSD:(A;;CC;;;${OFFLINE})` })];
    const userOrFence = [rule({ localUserSddl: `O:LSD:(A;;CC;;;${OFFLINE})(A;;CC;;;${FENCE})` })];
    assert.equal(evaluateOutbound(onlyUser, tcp(child, '1.2.3.4', 443), on).allowed, true, 'the naive rule misses the child');
    assert.equal(evaluateOutbound(onlyUser, tcp(child, '1.2.3.4', 443), { ...on, restrictingSidsInUserMatch: false }).allowed, false);
    assert.equal(evaluateOutbound(userOrFence, tcp(child, '1.2.3.4', 443), on).allowed, false);
    assert.equal(evaluateOutbound(userOrFence, tcp(child, '1.2.3.4', 443), { ...on, restrictingSidsInUserMatch: false }).allowed, false);
  });

  it('addresses: single, ranges, CIDR, IPv6 with ::', () => {
    assert.equal(parseIp('::1').value, 1n);
    assert.equal(parseIp('[::1]').family, 6);
    assert.equal(parseIp('ffff::').value, 0xffffn << 112n);
    assert.equal(isLoopback('127.8.9.10'), true);
    assert.equal(isLoopback('::2'), false);
    const r = [rule({ remoteAddresses: ['10.0.0.0/8', '::2-ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff'] })];
    assert.equal(evaluateOutbound(r, tcp(user(OTHER), '10.200.0.1', 1), on).allowed, false);
    assert.equal(evaluateOutbound(r, tcp(user(OTHER), '11.0.0.1', 1), on).allowed, true);
    assert.equal(evaluateOutbound(r, tcp(user(OTHER), '2001:db8::1', 1), on).allowed, false);
    assert.equal(evaluateOutbound(r, tcp(user(OTHER), '::1', 1), on).allowed, true);
    assert.throws(() => parseIp('1.2.3.256'), /bad IPv4/);
  });

  it('the loopback switch: when rules skip loopback, nothing on loopback is blocked', () => {
    const rules = [rule({})];
    assert.equal(evaluateOutbound(rules, tcp(user(OTHER), '127.0.0.1', 22), on).allowed, false);
    assert.equal(evaluateOutbound(rules, tcp(user(OTHER), '127.0.0.1', 22), { ...on, filtersLoopback: false }).allowed, true);
  });
});

describe("cordon's offline rules", () => {
  const { broad, narrow } = offlineFirewallRules({ first: 47800, last: 47809 }, OFFLINE, FENCE);
  const child = createRestrictedToken(user(OFFLINE), { writeRestricted: true, restrictingSids: [CAP, FENCE, SID.Restricted] });

  it('leave exactly the proxy ports open, on both loopback families, for TCP only', () => {
    const open: number[] = [];
    for (let port = 1; port <= 65535; port += 1) {
      if (evaluateOutbound(narrow, tcp(child, '127.0.0.1', port), on).allowed) open.push(port);
    }
    assert.deepEqual(open, Array.from({ length: 10 }, (_, i) => 47800 + i));
    assert.equal(evaluateOutbound(narrow, tcp(child, '::1', 47805), on).allowed, true);
    assert.equal(evaluateOutbound(narrow, tcp(child, '::1', 47810), on).allowed, false);
    assert.equal(evaluateOutbound(narrow, { ...tcp(child, '127.0.0.1', 47805), protocol: 'udp' }, on).allowed, false);
    assert.equal(evaluateOutbound(narrow, tcp(child, '93.184.216.34', 47805), on).allowed, false);
    assert.equal(evaluateOutbound(narrow, { ...tcp(child, '8.8.8.8', 0), protocol: 'icmp' }, on).allowed, false);
  });

  it('the broad rule alone blocks everything, including the proxy', () => {
    assert.equal(evaluateOutbound([broad], tcp(child, '127.0.0.1', 47805), on).allowed, false);
  });

  it('do not touch other users', () => {
    assert.equal(evaluateOutbound([broad, ...narrow], tcp(user(OTHER), '93.184.216.34', 443), on).allowed, true);
  });

  it('port complements are exact at the edges', () => {
    assert.deepEqual(portComplement(1, 65535), []);
    assert.deepEqual(portComplement(2, 65534), ['1', '65535']);
    assert.deepEqual(portComplement(47800, 47809), ['1-47799', '47810-65535']);
  });
});
