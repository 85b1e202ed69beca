// A recording fake of the Win32 layer: wraps any WindowsSystem, records every call in order, and
// can be told to fail the N-th state-changing call (or any call a predicate picks) with a Win32
// error, so that rollback is tested after a failure at every point of setup.

import { Win32Error, type WindowsSystem } from '../enforcer/system.js';

export interface RecordedCall {
  method: string;
  args: unknown[];
  mutating: boolean;
  failed: boolean;
}

const MUTATING = /^(create|delete|set|add|remove|put|write|protect(Inheritance)?$)/;

export interface FailurePlan {
  /** Fail the N-th (1-based) state-changing call. */
  atMutation?: number;
  /** Fail every call for which this returns true. */
  when?: (method: string, args: unknown[]) => boolean;
  code?: number;
}

export function recording(inner: WindowsSystem, failure: FailurePlan = {}): { sys: WindowsSystem; calls: RecordedCall[]; mutations: () => RecordedCall[] } {
  const calls: RecordedCall[] = [];
  let mutations = 0;
  const sys = new Proxy(inner, {
    get(target, prop, receiver) {
      const value = Reflect.get(target, prop, receiver) as unknown;
      if (typeof value !== 'function' || typeof prop !== 'string') return value;
      return async (...args: unknown[]) => {
        const mutating = MUTATING.test(prop) && prop !== 'protectData';
        if (mutating) mutations += 1;
        const shouldFail = (mutating && failure.atMutation === mutations) || (failure.when?.(prop, args) ?? false);
        calls.push({ method: prop, args, mutating, failed: shouldFail });
        if (shouldFail) throw new Win32Error(prop, failure.code ?? 1117, 'injected failure (the device is not responding)');
        return (value as (...a: unknown[]) => Promise<unknown>).apply(target, args);
      };
    },
  });
  return { sys, calls, mutations: () => calls.filter((c) => c.mutating) };
}
