// Runs a named library scenario as whatever user runs this script and prints its JSON result.
// Tests run it via runuser to exercise the library as an unprivileged user.
import { createSandbox } from '../../src/sandbox.js';

type Scenario = (args: Record<string, string>) => Promise<unknown>;

const scenarios: Record<string, Scenario> = {
  async sessionState() {
    const sandbox = await createSandbox({ userConfig: null });
    const s = await sandbox.openSession();
    try {
      const a = await s.exec('mkdir -p sub/dir && cd sub/dir && export GREETING=hello && UNEXPORTED=1');
      const b = await s.exec('pwd; echo "$GREETING/${UNEXPORTED:-unset}"');
      const c = await s.exec('cd .. && exit 3');
      const d = await s.run(['pwd']);
      return { a: a.exitCode, b: b.stdout, c: c.exitCode, cwdAfterExit: s.cwd, d: d.stdout };
    } finally {
      await s.close();
    }
  },
  async sessionBackground(args) {
    const sandbox = await createSandbox({ userConfig: null });
    const s = await sandbox.openSession();
    const start = await s.exec(`python3 -m http.server ${args.port} --bind 127.0.0.1 >/tmp/server.log 2>&1 & echo started`);
    let reached = '';
    for (let i = 0; i < 100 && !reached; i++) {
      const r = await s.run(['python3', '-c', `import urllib.request;print(urllib.request.urlopen('http://127.0.0.1:${args.port}/').status)`]);
      if (r.exitCode === 0) reached = r.stdout.trim();
      else await new Promise((res) => setTimeout(res, 100));
    }
    const log = reached ? '' : `start: ${start.exitCode} ${start.stderr}\n` + (await s.run(['sh', '-c', 'cat /tmp/server.log; ps aux; dmesg 2>/dev/null | tail -3'])).stdout;
    const crash = await s.run(['sh', '-c', 'kill -SEGV $$']);
    const killed = await s.run(['sh', '-c', 'kill -KILL $$']);
    const after = await s.run(['echo', 'still-alive']);
    await s.close();
    return { log, start: start.stdout.trim(), reached, crash: crash.exitCode, killed: killed.exitCode, after: after.stdout.trim() };
  },
  async runsThenClose() {
    const sandbox = await createSandbox({ userConfig: null });
    const codes: number[] = [];
    for (let i = 0; i < 5; i++) codes.push((await sandbox.run(['sh', '-c', `exit ${i}`])).exitCode);
    await new Promise((r) => setTimeout(r, 50)); // let the next run's sandbox start warm
    await sandbox.close();
    return { codes };
  },
  async sessionHang(args) {
    // Opens a session with a background process, then waits to be killed by the test.
    const sandbox = await createSandbox({ userConfig: null });
    const s = await sandbox.openSession();
    await s.exec(`sh -c "sleep 300; : ${args.marker}" >/dev/null 2>&1 &`);
    process.stdout.write('ready\n');
    await new Promise(() => undefined);
  },
};

const [name, json] = process.argv.slice(2);
const fn = scenarios[name ?? ''];
if (!fn) throw new Error(`unknown scenario ${name}`);
const result = await fn(JSON.parse(json ?? '{}') as Record<string, string>);
process.stdout.write(JSON.stringify(result));
// Without an explicit exit: a sandbox must not keep the host process alive once closed.
