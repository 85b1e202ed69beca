// cordon's library entry point.
export { createSandbox, Sandbox, explainSetupError } from './sandbox.js';
export type { SandboxOptions, SpawnOptions, RunOptions, RunResult, CommandResult, SandboxedCommand, Violation, LayerReport } from './sandbox.js';
export type { PolicyInput, ResolvedPolicy, Mode, NetworkMode, EnvInherit } from './policy/types.js';
export { PolicyError, LayerUnavailableError } from './policy/errors.js';
