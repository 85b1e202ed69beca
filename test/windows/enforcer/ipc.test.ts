// The broker ↔ runner protocol over real sockets (a Unix socket stands in for the named pipe), with
// the runner driving the model's Win32 layer: framing, the spawn sequence, fail-closed paths,
// timeouts and a process other than the runner on the pipe.

import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, describe, it } from 'node:test';
import { type BrokerApi, type PipeConnection, type RunnerProcess, runViaRunner } from '../../../src/windows/enforcer/broker.js';
import { FrameDecoder, PROTOCOL_VERSION, ProtocolError, asBrokerMessage, asRunnerMessage, encodeFrame } from '../../../src/windows/enforcer/ipc.js';
import { type FrameStream, TIMEOUT_EXIT, serveRunner } from '../../../src/windows/enforcer/runner.js';
import { ModelRunnerApi, type ModelProgram } from '../../../src/windows/model/system.js';
import type { CommandPlan } from '../../../src/windows/plan.js';
import { install, runCommand } from '../harness.js';

const dirs: string[] = [];
after(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })));

function socketStream(socket: net.Socket): FrameStream {
  return {
    write: (chunk) => void socket.write(chunk),
    onData: (l) => void socket.on('data', l),
    onClose: (l) => void socket.on('close', l),
    end: () => void socket.end(),
  };
}

interface Harness {
  api: BrokerApi;
  runner: () => ModelRunnerApi | null;
  killed: () => boolean;
}

/** A BrokerApi whose pipe is a Unix socket and whose runner is served in-process on the model. */
async function harness(program: ModelProgram, options: { impostor?: boolean; runnerExitsFirst?: boolean; failDesktop?: boolean; failAssign?: boolean } = {}): Promise<{ h: Harness; plan: CommandPlan; user: { name: string; password: string }; callerSid: string }> {
  const env = await install();
  const run = await runCommand(env, env.layout.workspace);
  const dir = mkdtempSync(path.join(tmpdir(), 'cordon-ipc-'));
  dirs.push(dir);
  const socketPath = path.join(dir, 'pipe');
  let runnerApi: ModelRunnerApi | null = null;
  let killed = false;
  const connectingPids: number[] = [];
  const api: BrokerApi = {
    async createPipeServer() {
      const server = net.createServer();
      const waiting: net.Socket[] = [];
      const waiters: ((s: net.Socket) => void)[] = [];
      server.on('connection', (s) => {
        s.on('end', () => s.end());
        const w = waiters.shift();
        if (w) w(s);
        else waiting.push(s);
      });
      await new Promise<void>((res) => server.listen(socketPath, res));
      return {
        accept: (timeoutMs: number) => new Promise<PipeConnection>((resolve, reject) => {
          const timer = setTimeout(() => reject(new Error('no client within the accept timeout')), timeoutMs);
          const take = (s: net.Socket) => {
            clearTimeout(timer);
            resolve({ ...socketStream(s), clientPid: connectingPids.shift() ?? -1 });
          };
          const s = waiting.shift();
          if (s) take(s);
          else waiters.push(take);
        }),
        close: () => new Promise<void>((res) => {
          for (const s of waiting) s.destroy();
          server.close(() => res());
        }),
      };
    },
    async launchRunner(user): Promise<RunnerProcess> {
      const pid = 4242;
      let resolveExit!: (code: number) => void;
      const exited = new Promise<number>((res) => (resolveExit = res));
      if (options.runnerExitsFirst) {
        resolveExit(1);
        return { pid, exited, kill: async () => void (killed = true) };
      }
      if (options.impostor) {
        connectingPids.push(999);
        net.connect(socketPath);
      }
      const token = env.machine.logon(user.name, user.password, { loadProfile: true });
      runnerApi = new ModelRunnerApi(env.machine, token, program);
      runnerApi.failDesktop = options.failDesktop ?? false;
      if (options.failAssign) runnerApi.assignToJob = async () => { throw Object.assign(new Error('access denied'), { code: 5 }); };
      connectingPids.push(pid);
      const socket = net.connect(socketPath);
      socket.on('connect', () => void serveRunner(socketStream(socket), runnerApi!).then(resolveExit));
      socket.on('error', () => resolveExit(1));
      return { pid, exited, kill: async () => { killed = true; socket.destroy(); } };
    },
  };
  return { h: { api, runner: () => runnerApi, killed: () => killed }, plan: run.plan, user: { name: run.plan.identity.userName, password: env.passwords.get(run.plan.identity.userName)! }, callerSid: env.layout.realUser.sid };
}

function collect() {
  const out: Buffer[] = [];
  const err: Buffer[] = [];
  return { io: { stdout: (b: Buffer) => out.push(b), stderr: (b: Buffer) => err.push(b) }, out: () => Buffer.concat(out).toString(), err: () => Buffer.concat(err).toString() };
}

const brokerOptions = (callerSid: string) => ({ acceptTimeoutMs: 5000, graceMs: 2000, callerSid });

describe('frames', () => {
  it('round-trip whatever the chunking', () => {
    const messages = [{ type: 'stdout', data: 'aGVsbG8=' }, { type: 'exit', code: 3, timedOut: false }, { type: 'stderr', data: 'é'.repeat(300) }];
    const bytes = Buffer.concat(messages.map((m) => encodeFrame(m)));
    for (let cut = 1; cut < bytes.length; cut += 7) {
      const d = new FrameDecoder();
      const got = [...d.push(bytes.subarray(0, cut)), ...d.push(bytes.subarray(cut))];
      assert.deepEqual(got, messages);
      assert.equal(d.pending, 0);
    }
  });

  it('refuse an announced frame over the limit before reading it', () => {
    const header = Buffer.alloc(4);
    header.writeUInt32LE(1024 * 1024 + 1, 0);
    assert.throws(() => new FrameDecoder(1024 * 1024).push(header), ProtocolError);
    assert.throws(() => encodeFrame({ type: 'stdout', data: 'x'.repeat(100) }, 50), /exceeds/);
  });

  it('refuse a frame that is not JSON, and stay failed', () => {
    const body = Buffer.from('{nope');
    const header = Buffer.alloc(4);
    header.writeUInt32LE(body.length, 0);
    const d = new FrameDecoder();
    assert.throws(() => d.push(Buffer.concat([header, body])), /not valid JSON/);
    assert.throws(() => d.push(encodeFrame({ type: 'exit' })), /already failed/);
  });

  it('reject unknown message types and a protocol version mismatch', () => {
    assert.throws(() => asRunnerMessage({ type: 'spawn' }), /unknown message type 'spawn'/);
    assert.throws(() => asBrokerMessage({ type: 'exit' }), /unknown message type/);
    assert.throws(() => asBrokerMessage({ type: 'spawn', version: PROTOCOL_VERSION + 1 }), /speaks protocol/);
    assert.throws(() => asRunnerMessage(42), /without a type/);
  });
});

describe('broker and runner over a socket', () => {
  it('run the command as a restricted child inside its job, relaying output and the exit status', async () => {
    const { h, plan, user, callerSid } = await harness(({ token, stdout, stderr }) => {
      stdout(`restricting=${token.restrictingSids.length} write-restricted=${token.writeRestricted}\n`);
      stderr('warning\n');
      return 7;
    });
    const c = collect();
    const result = await runViaRunner(plan, user, h.api, c.io, brokerOptions(callerSid));
    assert.deepEqual(result, { exitCode: 7, timedOut: false });
    assert.equal(c.out(), 'restricting=3 write-restricted=true\n');
    assert.equal(c.err(), 'warning\n');
    assert.deepEqual(h.runner()!.events, ['harden', 'token', 'desktop', 'job', 'create-suspended', 'assign', 'resume', 'terminate-job']);
    assert.match(h.runner()!.hardenedWith!, new RegExp(`^D:P\\(A;;0x1fffff;;;SY\\)\\(A;;0x1fffff;;;${callerSid}\\)$`));
  });

  it('fail closed when the private desktop cannot be made: no process is created', async () => {
    const { h, plan, user, callerSid } = await harness(() => 0, { failDesktop: true });
    await assert.rejects(runViaRunner(plan, user, h.api, collect().io, brokerOptions(callerSid)), /runner failed at desktop/);
    assert.ok(!h.runner()!.events.includes('create-suspended'));
  });

  it('kill the suspended child if it cannot be put in its job, and never resume it', async () => {
    const { h, plan, user, callerSid } = await harness(() => 0, { failAssign: true });
    await assert.rejects(runViaRunner(plan, user, h.api, collect().io, brokerOptions(callerSid)), /runner failed at assign-job/);
    const events = h.runner()!.events;
    assert.ok(events.includes('terminate-process'));
    assert.ok(!events.some((e) => e.startsWith('resume')));
  });

  it('stop the job at the time limit and report 124', async () => {
    const { h, plan, user, callerSid } = await harness(() => 'hang');
    const result = await runViaRunner({ ...plan, timeoutMs: 50 }, user, h.api, collect().io, brokerOptions(callerSid));
    assert.deepEqual(result, { exitCode: TIMEOUT_EXIT, timedOut: true });
    assert.ok(h.runner()!.events.includes('terminate-job'));
  });

  it('refuse a process other than the runner on the pipe, and kill the runner', async () => {
    const { h, plan, user, callerSid } = await harness(() => 0, { impostor: true });
    await assert.rejects(runViaRunner(plan, user, h.api, collect().io, brokerOptions(callerSid)), /process 999 connected to the pipe instead of the runner \(4242\)/);
    assert.equal(h.killed(), true);
  });

  it('report a runner that exits before connecting', async () => {
    const { h, plan, user, callerSid } = await harness(() => 0, { runnerExitsFirst: true });
    await assert.rejects(runViaRunner(plan, user, h.api, collect().io, brokerOptions(callerSid)), /runner exited \(1\) before connecting/);
  });

  it('end the command when the broker sends garbage instead of a spawn request', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'cordon-ipc-'));
    dirs.push(dir);
    const socketPath = path.join(dir, 'pipe');
    const env = await install();
    const token = env.machine.logon('cordon-offline', env.passwords.get('cordon-offline')!);
    const api = new ModelRunnerApi(env.machine, token, () => 0);
    const decoder = new FrameDecoder();
    const replies: unknown[] = [];
    const server = net.createServer((s) => {
      s.on('data', (d) => replies.push(...decoder.push(d))); // what the runner answers
      s.on('end', () => s.end());
      s.write(encodeFrame({ type: 'stdin', data: '' }));
    });
    await new Promise<void>((res) => server.listen(socketPath, res));
    const socket = net.connect(socketPath);
    await new Promise((res) => socket.on('connect', res));
    const code = await serveRunner(socketStream(socket), api);
    await new Promise<void>((res) => server.close(() => res()));
    assert.equal(code, 1);
    assert.deepEqual(api.events, []);
    assert.match(JSON.stringify(replies), /expected a spawn request first/);
  });
});
