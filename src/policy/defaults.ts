// Built-in defaults shared by every platform. Plain data: the resolver and the per-platform
// planners decide what each entry means on their OS.

/**
 * Secrets under the user's home that are unreadable by default (relative to home, `/` separated).
 * Credentials an agent never needs to read to build and test: keys, cloud and registry tokens,
 * keyrings and browser profiles.
 */
export const SECRET_HOME_PATHS: readonly string[] = [
  '.ssh',
  '.gnupg',
  '.aws',
  '.azure',
  '.config/gcloud',
  '.docker',
  '.kube',
  '.npmrc',
  '.yarnrc.yml',
  '.pypirc',
  '.netrc',
  '.git-credentials',
  '.config/git/credentials',
  '.config/gh',
  '.config/hub',
  '.cargo/credentials',
  '.cargo/credentials.toml',
  '.gem/credentials',
  '.m2/settings-security.xml',
  '.terraform.d/credentials.tfrc.json',
  '.local/share/keyrings',
  '.password-store',
  '.mozilla',
  '.config/google-chrome',
  '.config/chromium',
  '.config/BraveSoftware',
  '.vault-token',
];

/** Directory names of git metadata whose contents run code on the user's next git command. */
export const GIT_PROTECTED_ENTRIES = {
  hooks: 'hooks',
  config: 'config',
  /** Per-worktree config (extensions.worktreeConfig). */
  worktreeConfig: 'config.worktree',
  /** Where git takes hooks and config from for a worktree: created in any git dir, it redirects git. */
  commonDir: 'commondir',
} as const;

/**
 * Names inside a writable root that make the user's tools run code later (on the next shell
 * start, editor open or task run). Read-only inside writable roots when they exist.
 * `dir` entries protect the whole directory.
 */
export const RUNS_CODE_LATER: readonly { name: string; kind: 'dir' | 'file' }[] = [
  { name: '.bashrc', kind: 'file' },
  { name: '.bash_profile', kind: 'file' },
  { name: '.bash_login', kind: 'file' },
  { name: '.bash_logout', kind: 'file' },
  { name: '.profile', kind: 'file' },
  { name: '.zshrc', kind: 'file' },
  { name: '.zshenv', kind: 'file' },
  { name: '.zprofile', kind: 'file' },
  { name: '.zlogin', kind: 'file' },
  { name: '.config/fish', kind: 'dir' },
  { name: '.envrc', kind: 'file' },
  { name: '.vscode', kind: 'dir' },
  { name: '.idea', kind: 'dir' },
  { name: '.devcontainer', kind: 'dir' },
  { name: '.gitconfig', kind: 'file' },
  { name: '.config/git', kind: 'dir' },
];

/**
 * Environment variable name patterns removed by default (`*` wildcard, matched case-insensitively
 * against the whole name). Values that look like credentials never reach the sandbox unless kept.
 */
export const SECRET_ENV_PATTERNS: readonly string[] = [
  '*TOKEN*',
  '*SECRET*',
  '*PASSWORD*',
  '*PASSWD*',
  '*_KEY',
  '*_KEYS',
  '*APIKEY*',
  '*API_KEY*',
  '*PRIVATE_KEY*',
  '*CREDENTIAL*',
  '*_AUTH',
  '*_PAT',
  '*SESSION_ID*',
  'AWS_*',
  'AZURE_*',
  'GOOGLE_APPLICATION_CREDENTIALS',
  'SSH_AUTH_SOCK',
  'SSH_AGENT_PID',
  'GPG_AGENT_INFO',
  'DBUS_SESSION_BUS_ADDRESS',
  'NPM_CONFIG__AUTH*',
  'NODE_AUTH_*',
];

/** Variables kept when `env.inherit` is `core`. */
export const CORE_ENV_NAMES: readonly string[] = [
  'HOME', 'LOGNAME', 'USER', 'USERNAME', 'PATH', 'SHELL', 'TERM', 'LANG', 'LANGUAGE', 'LC_ALL',
  'LC_CTYPE', 'TZ', 'TMPDIR', 'COLORTERM', 'NO_COLOR', 'FORCE_COLOR',
];

/** Default limits: generous enough never to bother a normal build, tight enough to stop runaways. */
export const DEFAULT_LIMITS = {
  /** No wall-clock limit unless asked: interactive shells and dev servers run long. */
  timeoutSeconds: null as number | null,
  /** Processes and threads in one sandbox: a fork bomb stops here, `make -j` does not. */
  pids: 4096,
  /** Fraction of physical memory one sandbox may use before it is killed. */
  memoryFraction: 0.75,
};

/** The file name of cordon's user config inside its config directory. */
export const CONFIG_FILE_NAME = 'config.json';
