// The runner's job, once it runs as the sandbox user: build the child's token from its own, make
// the private desktop (or stop), make the job, create the child suspended, put it in the job, and
// only then let it run. Anything that fails before the child is inside its job kills the child.

import type { RunnerApi, Handle, SpawnedChild } from './system.js';
import type { RunnerMessage, SpawnRequest } from './ipc.js';

/** Exit status reported when the wall-clock limit killed the command (same as the Linux side). */
export const TIMEOUT_EXIT = 124;
/** Exit status reported when the broker asked for termination. */
export const TERMINATED_EXIT = 130;

export interface RunnerControl {
  /** Resolves when the broker asks to stop the command. */
  terminated: Promise<string>;
  onStdin(listener: (data: Buffer | null) => void): void;
}

export class RunnerStageError extends Error {
  constructor(readonly stage: string, readonly code: number, message: string) {
    super(message);
  }
}

function codeOf(e: unknown): number {
  return typeof (e as { code?: unknown }).code === 'number' ? (e as { code: number }).code : 0;
}

async function stage<T>(name: string, action: () => Promise<T>): Promise<T> {
  try {
    return await action();
  } catch (e) {
    throw new RunnerStageError(name, codeOf(e), `${name}: ${e instanceof Error ? e.message : String(e)}`);
  }
}

export async function runChild(request: SpawnRequest, api: RunnerApi, send: (m: RunnerMessage) => void, control: RunnerControl): Promise<number> {
  let token: Handle | null = null;
  let desktop: Handle | null = null;
  let job: Handle | null = null;
  let child: SpawnedChild | null = null;
  let inJob = false;
  try {
    await stage('harden-runner', () => api.hardenOwnProcess(request.runnerProcessSddl));
    token = await stage('token', () => api.createChildToken(request.token));
    // Fail closed: without its own desktop the child could drive the user's windows.
    desktop = await stage('desktop', () => api.createDesktop(request.desktop.name, request.desktop.sddl));
    job = await stage('job', () => api.createJob(request.job));
    child = await stage('create-process', () => api.createSuspended(token!, request.process, `WinSta0\\${request.desktop.name}`, { stdin: 'pipe', stdout: 'pipe', stderr: 'pipe' }));
    child.onStdout((chunk) => send({ type: 'stdout', data: chunk.toString('base64') }));
    child.onStderr((chunk) => send({ type: 'stderr', data: chunk.toString('base64') }));
    control.onStdin((data) => (data === null ? child!.closeStdin() : child!.write(data)));
    await stage('assign-job', () => api.assignToJob(job!, child!.process));
    inJob = true;
    await stage('resume', () => api.resume(child!.thread));
    send({ type: 'ready', pid: child.pid });

    const outcome = await Promise.race([
      api.wait(child.process, request.timeoutMs).then((r) => ({ kind: 'exited' as const, r })),
      control.terminated.then((reason) => ({ kind: 'terminated' as const, reason })),
    ]);
    if (outcome.kind === 'terminated') {
      await api.terminateJob(job, TERMINATED_EXIT);
      send({ type: 'exit', code: TERMINATED_EXIT, timedOut: false });
      return TERMINATED_EXIT;
    }
    if (outcome.r === 'timeout') {
      await api.terminateJob(job, TIMEOUT_EXIT);
      send({ type: 'exit', code: TIMEOUT_EXIT, timedOut: true });
      return TIMEOUT_EXIT;
    }
    send({ type: 'exit', code: outcome.r, timedOut: false });
    return outcome.r;
  } catch (e) {
    if (child && !inJob) await api.terminateProcess(child.process, 1).catch(() => undefined);
    const err = e instanceof RunnerStageError ? e : new RunnerStageError('runner', codeOf(e), String(e));
    send({ type: 'error', stage: err.stage, code: err.code, message: err.message });
    return 1;
  } finally {
    // Closing the job handle kills whatever the command left running (KILL_ON_JOB_CLOSE).
    if (job !== null) await api.closeHandle(job).catch(() => undefined);
    if (desktop !== null) await api.closeDesktop(desktop).catch(() => undefined);
    if (token !== null) await api.closeHandle(token).catch(() => undefined);
  }
}

/** A byte stream both ends speak frames over (the named pipe; a socket in tests). */
export interface FrameStream {
  write(chunk: Buffer): void;
  onData(listener: (chunk: Buffer) => void): void;
  onClose(listener: () => void): void;
  end(): void;
}

/**
 * The runner's side of one session: the first frame must be the spawn request; stdin, stdin-close
 * and terminate may follow. If the broker goes away, the command is terminated.
 */
export async function serveRunner(stream: FrameStream, api: RunnerApi, maxFrame?: number): Promise<number> {
  const { FrameDecoder, asBrokerMessage, encodeFrame } = await import('./ipc.js');
  const decoder = new FrameDecoder(maxFrame);
  const send = (m: RunnerMessage) => {
    try {
      stream.write(encodeFrame(m, maxFrame));
    } catch {
      // The broker is gone; the command is being terminated anyway.
    }
  };
  let requestResolve!: (r: SpawnRequest) => void;
  let requestReject!: (e: Error) => void;
  const request = new Promise<SpawnRequest>((res, rej) => ((requestResolve = res), (requestReject = rej)));
  let terminate!: (reason: string) => void;
  const terminated = new Promise<string>((res) => (terminate = res));
  let stdinListener: ((d: Buffer | null) => void) | null = null;
  let gotRequest = false;
  stream.onData((chunk) => {
    try {
      for (const raw of decoder.push(chunk)) {
        const m = asBrokerMessage(raw);
        if (!gotRequest) {
          if (m.type !== 'spawn') throw new Error(`expected a spawn request first, got '${m.type}'`);
          gotRequest = true;
          requestResolve(m);
        } else if (m.type === 'stdin') stdinListener?.(Buffer.from(m.data, 'base64'));
        else if (m.type === 'stdin-close') stdinListener?.(null);
        else if (m.type === 'terminate') terminate(m.reason);
        else throw new Error('a second spawn request');
      }
    } catch (e) {
      if (!gotRequest) requestReject(e as Error);
      terminate(`protocol error: ${(e as Error).message}`);
    }
  });
  stream.onClose(() => {
    if (!gotRequest) requestReject(new Error('broker closed the pipe before sending a request'));
    terminate('broker went away');
  });
  let req: SpawnRequest;
  try {
    req = await request;
  } catch (e) {
    send({ type: 'error', stage: 'protocol', code: 0, message: (e as Error).message });
    stream.end();
    return 1;
  }
  const code = await runChild(req, api, send, { terminated, onStdin: (l) => (stdinListener = l) });
  stream.end();
  return code;
}
