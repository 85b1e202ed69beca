// Where a policy comes from and how the sources combine. Sources, strongest first: CLI flags, the
// file given with --policy, the user's config, the built-in defaults. A policy never comes from
// the repository being worked on (the resolver refuses a policy file inside a writable root).
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { CONFIG_FILE_NAME } from './defaults.js';
import { PolicyError } from './errors.js';
import type { PolicyInput } from './types.js';
import { validatePolicyInput } from './validate.js';

/** The user config file for this platform (it may not exist). */
export function userConfigPath(env: Record<string, string | undefined>, home: string, platform: NodeJS.Platform = process.platform): string {
  if (env.CORDON_CONFIG) return env.CORDON_CONFIG;
  if (platform === 'win32') return join(env.APPDATA ?? join(home, 'AppData', 'Roaming'), 'cordon', CONFIG_FILE_NAME);
  if (platform === 'darwin' && !env.XDG_CONFIG_HOME) return join(home, 'Library', 'Application Support', 'cordon', CONFIG_FILE_NAME);
  return join(env.XDG_CONFIG_HOME || join(home, '.config'), 'cordon', CONFIG_FILE_NAME);
}

/** Reads and validates one policy file. Missing is an error unless `optional`. */
export function readPolicyFile(file: string, optional: boolean, validatePattern?: (p: string) => void): PolicyInput | null {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (optional && code === 'ENOENT') return null;
    throw new PolicyError(`${file}: cannot read the policy file (${code ?? (e as Error).message}); check the path`);
  }
  if (text.trim() === '') throw new PolicyError(`${file}: the policy file is empty; write {} for the defaults or delete the file`);
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (e) {
    throw new PolicyError(`${file}: not valid JSON (${(e as Error).message}); fix the syntax`);
  }
  return validatePolicyInput(value, file, validatePattern);
}

const LIST_FIELDS = {
  filesystem: ['write', 'protect', 'denyRead', 'allowRead'],
  network: ['allow', 'deny'],
  sockets: ['allow'],
  env: ['scrub', 'keep'],
} as const;

/**
 * Merges policy layers, weakest first. Scalars: the stronger layer wins. Lists: concatenated
 * (a stronger layer adds restrictions or roots, it cannot silently drop the user's). env.set: merged.
 */
export function mergePolicies(layers: PolicyInput[]): PolicyInput {
  const out: PolicyInput = {};
  for (const layer of layers) {
    if (layer.mode) out.mode = layer.mode;
    if (layer.workspace) out.workspace = layer.workspace;
    if (layer.allowReduced !== undefined) out.allowReduced = layer.allowReduced;
    for (const section of ['filesystem', 'network', 'sockets', 'env', 'limits'] as const) {
      const src = layer[section] as Record<string, unknown> | undefined;
      if (!src) continue;
      const dst = ((out as Record<string, unknown>)[section] ??= {}) as Record<string, unknown>;
      for (const [key, value] of Object.entries(src)) {
        if (value === undefined) continue;
        const isList = (LIST_FIELDS as Record<string, readonly string[]>)[section]?.includes(key);
        if (isList) dst[key] = [...((dst[key] as unknown[]) ?? []), ...(value as unknown[])];
        else if (section === 'env' && key === 'set') dst[key] = { ...(dst[key] as object), ...(value as object) };
        else dst[key] = value;
      }
    }
  }
  return out;
}

export interface PolicySources {
  /** Parsed CLI flags (already validated by the CLI). */
  flags?: PolicyInput;
  /** A policy object given to the library. */
  library?: PolicyInput;
  /** --policy FILE */
  policyFile?: string;
  /** The user config file; `null` to ignore it. Default: userConfigPath(). */
  userConfig?: string | null;
  env: Record<string, string | undefined>;
  home: string;
  validatePattern?: (p: string) => void;
}

export interface LoadedPolicy {
  input: PolicyInput;
  /** Strongest first. */
  sources: string[];
  policyFile: string | null;
  userConfigFile: string | null;
}

export function loadPolicy(src: PolicySources): LoadedPolicy {
  const layers: PolicyInput[] = [];
  const sources: string[] = [];
  const configFile = src.userConfig === undefined ? userConfigPath(src.env, src.home) : src.userConfig;
  const fromConfig = configFile ? readPolicyFile(configFile, true, src.validatePattern) : null;
  if (fromConfig) {
    layers.push(fromConfig);
    sources.unshift(configFile!);
  }
  if (src.policyFile) {
    layers.push(readPolicyFile(src.policyFile, false, src.validatePattern)!);
    sources.unshift(src.policyFile);
  }
  if (src.library) {
    layers.push(validatePolicyInput(src.library, 'policy', src.validatePattern));
    sources.unshift('library');
  }
  if (src.flags) {
    layers.push(src.flags);
    sources.unshift('flags');
  }
  sources.push('defaults');
  return { input: mergePolicies(layers), sources, policyFile: src.policyFile ?? null, userConfigFile: fromConfig ? configFile : null };
}
