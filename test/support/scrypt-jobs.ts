import { createHook } from 'node:async_hooks';
import type { ExecutionContext } from 'ava';

/**
 * Counts the scrypt jobs this process starts (libuv thread-pool requests) until the test
 * ends: proof of a password check without timing it. Counts the whole process, so the
 * test must run serially.
 */
export function countScryptJobs(t: ExecutionContext): { readonly count: number } {
  const counter = { count: 0 };
  const hook = createHook({
    init(_id, type) {
      if (type === 'SCRYPTREQUEST') counter.count++;
    },
  }).enable();
  t.teardown(() => void hook.disable());
  return counter;
}
