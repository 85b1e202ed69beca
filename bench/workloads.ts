// The workloads of the table: what one timed unit runs, how its workspace is prepared, and how
// each run is checked (a sandbox that fails fast must not look fast).
import { execFileSync } from 'node:child_process';
import { mkdirSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { CommandResult } from './process.js';

export interface Step {
  argv: string[];
  /** Extra check on a successful (exit 0) result: a description of what is wrong, or null. */
  expect?: (result: CommandResult) => string | null;
}

export interface Workload {
  id: string;
  /** Row label in the table. */
  title: string;
  /** Measured runs per column (before scaling), and untimed warm-up runs. */
  runs: number;
  warmup: number;
  /** Tools the workload needs on the host; the row is skipped with a note when one is missing. */
  requires: string[];
  /** The commands of one timed unit; `token` is unique per run so runs never collide. */
  steps(token: string, workspace: string): Step[];
  /** Untimed check after a unit: what is wrong, or null. */
  after?(workspace: string, token: string): string | null;
  /**
   * Untimed cleanup, once every column has run the round: deleting right after a unit would leave
   * the file system busy (journal, discard) while the next column is being timed.
   */
  cleanup?(workspace: string, token: string): void;
}

function stdoutIs(expected: string): (result: CommandResult) => string | null {
  return (result) => (result.stdout.trim() === expected ? null : `expected stdout ${JSON.stringify(expected)}, got ${JSON.stringify(result.stdout.trim().slice(0, 80))}`);
}

function stdoutHas(expected: string): (result: CommandResult) => string | null {
  return (result) => (result.stdout.includes(expected) ? null : `expected stdout to contain ${JSON.stringify(expected)}`);
}

const GIT_IDENTITY = ['-c', 'user.name=Bench', '-c', 'user.email=bench@example.invalid'];

/**
 * Every workspace is the same small git repository (an agent's usual checkout), committed, with
 * identity and no signing in the repo's own config so `git commit` works inside any sandbox.
 */
export function createWorkspace(directory: string): void {
  mkdirSync(join(directory, 'src'), { recursive: true });
  mkdirSync(join(directory, 'notes'), { recursive: true });
  writeFileSync(join(directory, 'README.md'), '# demo-app\n\nA tiny project the bench works on.\n\n- alpha\n- beta\n');
  writeFileSync(join(directory, 'package.json'), JSON.stringify({ name: 'demo-app', version: '1.2.3', private: true }, null, 2) + '\n');
  writeFileSync(join(directory, 'src', 'a.js'), "'use strict';\nfunction alpha(x) {\n  return x + 1;\n}\nmodule.exports = { alpha };\n");
  writeFileSync(join(directory, 'src', 'b.js'), "'use strict';\nconst { alpha } = require('./a.js');\nfunction beta(x) {\n  return alpha(x) * 2;\n}\nmodule.exports = { beta };\n");
  writeFileSync(join(directory, 'src', 'tool.py'), 'def gamma(x):\n    return x * 3\n');
  writeFileSync(join(directory, 'notes', '.keep'), '');
  const git = (...args: string[]) => execFileSync('git', args, { cwd: directory, stdio: ['ignore', 'ignore', 'pipe'] });
  git('init', '-q', '-b', 'main');
  git('config', 'user.name', 'Bench');
  git('config', 'user.email', 'bench@example.invalid');
  git('config', 'commit.gpgsign', 'false');
  git('add', '.');
  git(...GIT_IDENTITY, 'commit', '-q', '-m', 'initial');
}

const FILE_COUNT = 1000;

/** A 50-command session of the kind a coding agent runs: look around, edit, test a bit, commit. */
export function agentSequence(token: string, workspace: string): Step[] {
  const notes = `notes/${token}`;
  const generated = `src/gen-${token}.js`;
  return [
    { argv: ['ls'] },
    { argv: ['ls', '-la', 'src'] },
    { argv: ['cat', 'README.md'], expect: stdoutHas('demo-app') },
    { argv: ['git', 'status'] },
    { argv: ['git', 'log', '--oneline', '-5'] },
    { argv: ['git', 'branch', '--show-current'], expect: stdoutIs('main') },
    { argv: ['grep', '-rn', 'function', 'src'] },
    { argv: ['find', 'src', '-name', '*.js'] },
    { argv: ['wc', '-l', 'src/a.js', 'src/b.js'] },
    { argv: ['head', '-n', '3', 'src/b.js'] },
    { argv: ['node', '-e', "process.stdout.write(require('./package.json').name)"], expect: stdoutIs('demo-app') },
    { argv: ['python3', '-c', "import json; print(json.load(open('package.json'))['version'])"], expect: stdoutIs('1.2.3') },
    { argv: ['cat', 'package.json'] },
    { argv: ['mkdir', '-p', notes] },
    { argv: ['sh', '-c', `printf 'run ${token}\\n' > ${notes}/log.txt`] },
    { argv: ['cat', `${notes}/log.txt`], expect: stdoutIs(`run ${token}`) },
    { argv: ['cp', 'src/a.js', `${notes}/a.js`] },
    { argv: ['sed', '-i', 's/alpha/ALPHA/g', `${notes}/a.js`] },
    { argv: ['grep', '-c', 'ALPHA', `${notes}/a.js`], expect: stdoutIs('2') },
    { argv: ['test', '-f', `${notes}/a.js`] },
    { argv: ['git', 'status', '--short'], expect: stdoutHas('notes/') },
    { argv: ['git', 'add', notes] },
    { argv: ['git', 'diff', '--cached', '--stat'] },
    { argv: ['git', 'commit', '-q', '-m', `notes ${token}`] },
    { argv: ['git', 'log', '-1', '--format=%s'], expect: stdoutIs(`notes ${token}`) },
    { argv: ['git', 'show', '--stat', 'HEAD'] },
    { argv: ['git', 'rev-parse', 'HEAD'] },
    { argv: ['ls', 'notes'] },
    { argv: ['pwd'], expect: stdoutIs(workspace) },
    { argv: ['uname', '-s'] },
    { argv: ['which', 'git'] },
    { argv: ['date', '+%s'] },
    { argv: ['sh', '-c', `echo "module.exports = '${token}';" > ${generated}`] },
    { argv: ['node', '-e', `process.stdout.write(require('./${generated}'))`], expect: stdoutIs(token) },
    { argv: ['python3', '-c', "import os; print(len(os.listdir('src')) > 3)"], expect: stdoutIs('True') },
    { argv: ['grep', '-rl', 'alpha', 'src'] },
    { argv: ['sort', 'README.md'] },
    { argv: ['tail', '-n', '2', 'README.md'] },
    { argv: ['git', 'diff', '--stat'] },
    { argv: ['git', 'add', generated] },
    { argv: ['git', 'commit', '-q', '-m', `generated ${token}`] },
    { argv: ['git', 'status', '--porcelain'] },
    { argv: ['mv', `${notes}/log.txt`, `${notes}/log.md`] },
    { argv: ['rm', `${notes}/a.js`] },
    { argv: ['ls', '-R', notes], expect: stdoutHas('log.md') },
    { argv: ['git', 'add', '-A', notes] },
    { argv: ['git', 'commit', '-q', '-m', `tidy ${token}`] },
    { argv: ['git', 'log', '--oneline', '-3'], expect: stdoutHas(`tidy ${token}`) },
    { argv: ['node', '-e', "console.log(require('./src/b.js').beta(1))"], expect: stdoutIs('4') },
    { argv: ['sh', '-c', 'echo hi'], expect: stdoutIs('hi') },
  ];
}

export const WORKLOADS: Workload[] = [
  { id: 'true', title: '`true`', runs: 30, warmup: 3, requires: [], steps: () => [{ argv: ['true'] }] },
  {
    id: 'echo',
    title: "`sh -c 'echo hi'`",
    runs: 30,
    warmup: 2,
    requires: [],
    steps: () => [{ argv: ['sh', '-c', 'echo hi'], expect: stdoutIs('hi') }],
  },
  {
    id: 'git-status',
    title: '`git status` (small repo)',
    runs: 20,
    warmup: 2,
    requires: ['git'],
    // Not "nothing to commit": srt's placeholders for its mandatory denies (.bashrc, .mcp.json, …)
    // show up as untracked files inside its sandbox.
    steps: () => [{ argv: ['git', 'status'], expect: stdoutHas('On branch main') }],
  },
  { id: 'node', title: '`node -e 0`', runs: 15, warmup: 2, requires: ['node'], steps: () => [{ argv: ['node', '-e', '0'] }] },
  {
    id: 'files',
    title: `write ${FILE_COUNT} small files`,
    runs: 10,
    warmup: 1,
    requires: [],
    steps: (token) => [
      {
        argv: ['sh', '-c', `mkdir out-${token} && cd out-${token} && i=0; while [ $i -lt ${FILE_COUNT} ]; do echo "file $i" > "f$i.txt"; i=$((i+1)); done`],
      },
    ],
    after(workspace, token) {
      let count = 0;
      try {
        count = readdirSync(join(workspace, `out-${token}`)).length;
      } catch {
        // missing directory: counted as no files
      }
      return count === FILE_COUNT ? null : `expected ${FILE_COUNT} files on the host, found ${count}`;
    },
    cleanup(workspace, token) {
      rmSync(join(workspace, `out-${token}`), { recursive: true, force: true });
    },
  },
  {
    id: 'agent',
    title: '50-command agent sequence',
    runs: 3,
    warmup: 1,
    requires: ['git', 'node', 'python3'],
    steps: agentSequence,
  },
];
