/**
 * An error the user can fix: bad policy input, a bad flag, a path that does not exist.
 * Its message is one line naming the field and the fix; the CLI prints it and exits 2.
 */
export class PolicyError extends Error {
  override readonly name = 'PolicyError';
  readonly exitCode = 2;
}

/** Raised when the machine cannot enforce what the policy needs (fail closed). */
export class LayerUnavailableError extends Error {
  override readonly name = 'LayerUnavailableError';
  readonly exitCode = 2;
}
