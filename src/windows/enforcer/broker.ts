// The broker runs as the real user: it owns the ACL-locked pipe, starts the runner as the sandbox
// user, checks that the process on the other end of the pipe *is* that runner, sends the spawn
// request, relays output, and enforces the wall-clock limit even if the runner stops answering.

import type { CommandPlan } from '../plan.js';
import { FrameDecoder, type SpawnRequest, asRunnerMessage, encodeFrame, PROTOCOL_VERSION } from './ipc.js';
import type { FrameStream } from './runner.js';
import { TIMEOUT_EXIT } from './runner.js';

export interface PipeConnection extends FrameStream {
  /** GetNamedPipeClientProcessId. */
  clientPid: number;
}

export interface PipeServer {
  accept(timeoutMs: number): Promise<PipeConnection>;
  close(): Promise<void>;
}

export interface RunnerProcess {
  pid: number;
  exited: Promise<number>;
  /** TerminateProcess: the runner's job handle closes with it, which kills the command's job. */
  kill(): Promise<void>;
}

export interface BrokerApi {
  /** CreateNamedPipeW(FILE_FLAG_FIRST_PIPE_INSTANCE, PIPE_REJECT_REMOTE_CLIENTS, 1 instance, SDDL). */
  createPipeServer(spec: NonNullable<CommandPlan['pipe']>): Promise<PipeServer>;
  /** CreateProcessWithLogonW(LOGON_WITH_PROFILE) of the runner, inside a kill-on-close job of the broker. */
  launchRunner(user: { name: string; password: string }, pipeName: string, cwd: string): Promise<RunnerProcess>;
}

export interface BrokerIo {
  stdout(chunk: Buffer): void;
  stderr(chunk: Buffer): void;
}

export interface BrokerResult {
  exitCode: number;
  timedOut: boolean;
}

export class BrokerError extends Error {
  constructor(readonly stage: string, message: string) {
    super(message);
  }
}

/** The DACL the runner puts on itself: SYSTEM and the broker's user only. */
export function runnerProcessSddl(callerSid: string): string {
  return `D:P(A;;0x1fffff;;;SY)(A;;0x1fffff;;;${callerSid})`;
}

export function spawnRequestFor(plan: CommandPlan, callerSid: string): SpawnRequest {
  return {
    type: 'spawn', version: PROTOCOL_VERSION, token: plan.token, job: plan.job,
    desktop: { name: plan.desktop.name, sddl: plan.desktop.sddl }, process: plan.process,
    timeoutMs: plan.timeoutMs, runnerProcessSddl: runnerProcessSddl(callerSid),
  };
}

export interface BrokerOptions {
  acceptTimeoutMs: number;
  /** Extra time the runner gets past the command's limit before the broker kills it. */
  graceMs: number;
  callerSid: string;
  stdin?: AsyncIterable<Buffer>;
}

export async function runViaRunner(plan: CommandPlan, user: { name: string; password: string }, api: BrokerApi, io: BrokerIo, options: BrokerOptions): Promise<BrokerResult> {
  if (!plan.pipe) throw new BrokerError('plan', 'this plan has no pipe (the reduced tier runs without a runner)');
  const server = await api.createPipeServer(plan.pipe);
  let runner: RunnerProcess | null = null;
  let conn: PipeConnection | null = null;
  try {
    runner = await api.launchRunner(user, plan.pipe.name, plan.process.cwd);
    const r = runner;
    const accepting = server.accept(options.acceptTimeoutMs);
    accepting.catch(() => undefined); // the race below may settle first; this one must not go unhandled
    conn = await Promise.race([
      accepting,
      r.exited.then((code): never => {
        throw new BrokerError('connect', `the runner exited (${code}) before connecting to the pipe`);
      }),
    ]);
    if (conn.clientPid !== r.pid) {
      throw new BrokerError('connect', `process ${conn.clientPid} connected to the pipe instead of the runner (${r.pid}); refusing to continue`);
    }
    const c = conn;
    const decoder = new FrameDecoder(plan.pipe.maxFrameBytes);
    const result = await new Promise<BrokerResult>((resolve, reject) => {
      let settled = false;
      const finish = (f: () => void) => {
        if (!settled) {
          settled = true;
          clearTimeout(guard);
          f();
        }
      };
      // The runner enforces the limit; this guard covers a runner that stopped answering.
      const guard = plan.timeoutMs === null ? undefined : setTimeout(() => {
        c.write(encodeFrame({ type: 'terminate', reason: 'timeout' }));
        setTimeout(() => finish(() => {
          void r.kill();
          resolve({ exitCode: TIMEOUT_EXIT, timedOut: true });
        }), options.graceMs).unref();
      }, plan.timeoutMs + options.graceMs);
      c.onData((chunk) => {
        try {
          for (const raw of decoder.push(chunk)) {
            const m = asRunnerMessage(raw);
            if (m.type === 'stdout') io.stdout(Buffer.from(m.data, 'base64'));
            else if (m.type === 'stderr') io.stderr(Buffer.from(m.data, 'base64'));
            else if (m.type === 'exit') finish(() => resolve({ exitCode: m.code, timedOut: m.timedOut }));
            else if (m.type === 'error') finish(() => reject(new BrokerError(m.stage, `runner failed at ${m.stage}: ${m.message}`)));
          }
        } catch (e) {
          finish(() => reject(new BrokerError('protocol', (e as Error).message)));
        }
      });
      c.onClose(() => finish(() => reject(new BrokerError('protocol', 'the runner closed the pipe without reporting an exit status'))));
      c.write(encodeFrame(spawnRequestFor(plan, options.callerSid), plan.pipe!.maxFrameBytes));
      if (options.stdin) {
        void (async () => {
          for await (const chunk of options.stdin!) c.write(encodeFrame({ type: 'stdin', data: chunk.toString('base64') }));
          c.write(encodeFrame({ type: 'stdin-close' }));
        })().catch(() => undefined);
      }
    });
    return result;
  } catch (e) {
    if (runner) await runner.kill().catch(() => undefined);
    throw e;
  } finally {
    conn?.end();
    await server.close();
  }
}
