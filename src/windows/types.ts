// Plain data shared by the plan, the model and the enforcer.

export type Protocol = 'tcp' | 'udp' | 'icmp';

/** One Windows Firewall rule, in the shape New-NetFirewallRule / INetFwRule3 take. */
export interface FirewallRule {
  /** Stable internal name: rules are found and updated by it. */
  name: string;
  direction: 'out' | 'in';
  action: 'block' | 'allow';
  enabled: boolean;
  protocol: Protocol | 'any';
  /** 'any' or entries: `1.2.3.4`, `1.2.3.4-1.2.3.9`, `10.0.0.0/8`, `::1`, `::2-ffff:…`. */
  remoteAddresses: 'any' | string[];
  /** 'any' or entries: `443`, `1-442`. */
  remotePorts: 'any' | string[];
  /** SDDL `O:LSD:(A;;CC;;;<SID>)…` (LocalUserAuthorizedList); absent: every user. */
  localUserSddl?: string;
}

/** Names of the accounts cordon creates. */
export interface AccountNames {
  group: string;
  offlineUser: string;
  onlineUser: string;
  /** Prefix of the workspace slot groups (`<prefix>0`, `<prefix>1`, …). */
  slotPrefix: string;
}

export const DEFAULT_ACCOUNT_NAMES: AccountNames = {
  group: 'cordon-sandbox',
  offlineUser: 'cordon-offline',
  onlineUser: 'cordon-online',
  slotPrefix: 'cordon-ws',
};

/** What setup leaves behind for per-command planning: read from the install state file. */
export interface InstallState {
  version: 1;
  installId: string;
  names: AccountNames;
  groupSid: string;
  offlineUserSid: string;
  onlineUserSid: string;
  /** One local group per workspace slot; the sandbox users are members of all of them. */
  slotSids: string[];
  /** The loopback TCP ports the offline identity may reach (cordon's proxy listens there). */
  proxyPorts: { first: number; last: number };
  /** Where the encrypted credentials live. */
  credentialPath: string;
  createdAt: string;
}
