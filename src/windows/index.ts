// cordon's Windows backend. Platform-neutral modules (plan, model, resolver) load anywhere; the
// Win32 layer (enforcer/win32.ts) is reached only through dynamic imports on win32.

export { runWindowsCommand, type CliIo } from './cli.js';
export { resolveWindowsPolicy, type WindowsHost, WindowsPolicyError } from './resolve.js';
export {
  compileSetupPlan, compileCommandPlan, assignSlot, capabilitySid, fenceSid, DEFAULT_SETUP_SETTINGS, WindowsPlanError,
  type SetupPlan, type CommandPlan, type SetupFacts, type WindowsSetupSettings, type Tier,
} from './plan.js';
export { formatSetupPlan, formatCommandPlan } from './format.js';
export type { InstallState, FirewallRule, AccountNames } from './types.js';

/**
 * Runs one command in the Windows sandbox (only on win32; rejects elsewhere). `proxyPort` is where
 * cordon's proxy listens when network.mode is allow-list; it must lie in the range setup fenced.
 */
export async function runWindowsSandboxed(
  input: import('../policy/types.js').PolicyInput,
  argv: string[],
  io: { stdout(b: Buffer): void; stderr(b: Buffer): void },
  options: import('./enforcer/windows-commands.js').WindowsRunOptions = {},
) {
  if (process.platform !== 'win32') throw new Error('runWindowsSandboxed: only on Windows');
  const { runSandboxedOnWindows } = await import('./enforcer/windows-commands.js');
  return runSandboxedOnWindows(input, argv, io, options);
}
