import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import { planNetworkBridge, proxyEnvironment } from '../../src/network/bridge-plan.js';
import type { ResolvedNetwork } from '../../src/policy/types.js';

const network = (over: Partial<ResolvedNetwork>): ResolvedNetwork => ({ mode: 'allow-list', allow: [], deny: [], transparent: false, ...over });

describe('planNetworkBridge', () => {
  it('plans only the proxy listener when the transparent path is off', () => {
    const plan = planNetworkBridge(network({ allow: ['registry.npmjs.org'] }));
    assert.deepEqual(plan.proxy, { host: '127.0.0.1', port: 3128 });
    assert.equal(plan.transparent, null);
    assert.equal(plan.env.HTTPS_PROXY, 'http://127.0.0.1:3128');
  });

  it('plans listeners for every allowed port plus 80/443, the resolver, and the extra loopback address', () => {
    const plan = planNetworkBridge(network({ allow: ['github.com:22', '*.example.com', 'db.internal:5432'], transparent: true }));
    assert.deepEqual(plan.transparent?.ports, [22, 80, 443, 5432]);
    assert.deepEqual(plan.transparent?.dns, { host: '127.0.0.1', port: 53 });
    assert.equal(plan.transparent?.loopbackAddress, '127.0.0.2/8');
    assert.match(plan.transparent?.resolvConf ?? '', /^nameserver 127\.0\.0\.1\n/);
  });

  it('moves the proxy port off a transparent port (both bind the same loopback)', () => {
    const plan = planNetworkBridge(network({ allow: ['a.test:3128', 'b.test:3129'], transparent: true }));
    assert.equal(plan.proxy.port, 3130);
  });

  it('rejects bad patterns with the loader-style message, and non-allow-list modes', () => {
    assert.throws(() => planNetworkBridge(network({ allow: ['https://x.test'] })), /^Error: network\.allow\[0\]: invalid domain pattern "https:\/\/x\.test"/);
    assert.throws(() => planNetworkBridge(network({ mode: 'off' })), /network\.mode is "off"/);
  });
});

describe('proxyEnvironment', () => {
  it('points every common tool at the bridge and keeps the sandbox loopback direct', () => {
    const env = proxyEnvironment(4000);
    for (const k of ['HTTP_PROXY', 'HTTPS_PROXY', 'http_proxy', 'https_proxy', 'npm_config_proxy', 'npm_config_https_proxy', 'YARN_HTTP_PROXY', 'YARN_HTTPS_PROXY', 'PIP_PROXY', 'CARGO_HTTP_PROXY']) {
      assert.equal(env[k], 'http://127.0.0.1:4000', k);
    }
    assert.equal(env.ALL_PROXY, 'socks5h://127.0.0.1:4000');
    assert.equal(env.NO_PROXY, 'localhost,127.0.0.1,::1');
    assert.equal(env.NODE_USE_ENV_PROXY, '1');
    assert.match(env.JAVA_TOOL_OPTIONS ?? '', /-Dhttps\.proxyPort=4000/);
  });
});
