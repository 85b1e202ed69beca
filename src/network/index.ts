// cordon's network layer: what the rest of cordon (policy loader, launcher, CLI, library) uses.

export { type Denial, type DenialProtocol, EgressProxy, type EgressProxyOptions, type ProxyStats } from './proxy.js';
export {
  type Decision,
  type DomainPattern,
  type NetworkRules,
  compileRules,
  decide,
  parseDomainPattern,
  transparentPorts,
} from './rules.js';
export { type BridgePlan, DEFAULT_PROXY_PORT, type TransparentPlan, planNetworkBridge, proxyEnvironment } from './bridge-plan.js';
export { nativeUnavailableReason } from './relay.js';
export { DEFAULT_POOL } from './name-pool.js';
