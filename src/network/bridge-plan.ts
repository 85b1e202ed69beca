// What the sandbox side of the network bridge needs, as data: which listeners the launcher
// creates inside the empty network namespace (and hands to the proxy), how the in-sandbox
// resolver is wired, and the environment that points tools at the proxy. Pure.

import type { ResolvedNetwork } from '../policy/types.js';
import { DEFAULT_POOL } from './name-pool.js';
import { compileRules, transparentPorts } from './rules.js';

export const DEFAULT_PROXY_PORT = 3128;

export interface TransparentPlan {
  /** One TCP listener on 0.0.0.0 per port; serve each with EgressProxy.serveTransparent. */
  ports: number[];
  /** UDP socket for the resolver; serve it with EgressProxy.serveDns. */
  dns: { host: '127.0.0.1'; port: 53 };
  /**
   * A second IPv4 address for `lo`. glibc's getaddrinfo(AI_ADDRCONFIG), which Node's
   * net.connect and many tools use, returns no IPv4 at all when 127.0.0.1 is the only IPv4
   * address, so pool answers would be invisible without it.
   */
  loopbackAddress: '127.0.0.2/8';
  /** Contents for /etc/resolv.conf inside the sandbox. */
  resolvConf: string;
  /** The pool the resolver answers from (EgressProxyOptions.dnsPool). */
  pool: string;
}

export interface BridgePlan {
  /** TCP listener for HTTP + SOCKS5; serve it with EgressProxy.serveProxy. */
  proxy: { host: '127.0.0.1'; port: number };
  transparent: TransparentPlan | null;
  /** Variables to set in the sandbox so proxy-aware tools use the bridge. */
  env: Record<string, string>;
}

/**
 * The bridge for a network policy in allow-list mode. Validates the patterns (throws the
 * loader's one-line errors). The proxy port avoids the transparent ports, which share 0.0.0.0.
 */
export function planNetworkBridge(network: ResolvedNetwork, proxyPort = DEFAULT_PROXY_PORT): BridgePlan {
  if (network.mode !== 'allow-list') throw new Error(`network.mode is "${network.mode}": the proxy bridge is only for "allow-list"`);
  const rules = compileRules(network.allow, network.deny);
  const ports = network.transparent ? transparentPorts(rules) : [];
  let port = proxyPort;
  while (ports.includes(port)) port++;
  return {
    proxy: { host: '127.0.0.1', port },
    transparent: network.transparent
      ? {
          ports,
          dns: { host: '127.0.0.1', port: 53 },
          loopbackAddress: '127.0.0.2/8',
          // One server, one short try: a refused name fails at once instead of after retries.
          resolvConf: 'nameserver 127.0.0.1\noptions attempts:1 timeout:2\n',
          pool: DEFAULT_POOL,
        }
      : null,
    env: proxyEnvironment(port),
  };
}

/** Proxy settings for the common tools, all pointing at 127.0.0.1:port inside the sandbox. */
export function proxyEnvironment(port: number): Record<string, string> {
  const http = `http://127.0.0.1:${port}`;
  // The sandbox's own loopback (dev servers started inside it) stays direct.
  const local = 'localhost,127.0.0.1,::1';
  return {
    HTTP_PROXY: http,
    HTTPS_PROXY: http,
    http_proxy: http,
    https_proxy: http,
    // socks5h: the proxy resolves names, as it must (the sandbox has no DNS of its own).
    ALL_PROXY: `socks5h://127.0.0.1:${port}`,
    all_proxy: `socks5h://127.0.0.1:${port}`,
    NO_PROXY: local,
    no_proxy: local,
    // Node >= 24 honours the variables above only with this set.
    NODE_USE_ENV_PROXY: '1',
    npm_config_proxy: http,
    npm_config_https_proxy: http,
    npm_config_noproxy: local,
    YARN_HTTP_PROXY: http,
    YARN_HTTPS_PROXY: http,
    PIP_PROXY: http,
    CARGO_HTTP_PROXY: http,
    JAVA_TOOL_OPTIONS:
      `-Dhttp.proxyHost=127.0.0.1 -Dhttp.proxyPort=${port} -Dhttps.proxyHost=127.0.0.1 -Dhttps.proxyPort=${port} ` +
      '-Dhttp.nonProxyHosts=localhost|127.0.0.1|[::1]',
  };
}
