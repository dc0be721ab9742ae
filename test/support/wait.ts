import { setTimeout as delay } from 'node:timers/promises';
import type { LockManager } from '../../lib/index.js';
import type { LineClient } from './line-client.js';

/**
 * Resolves once `check` holds. For state that has no event to await (a counter, a row, a
 * file): it looks again every few milliseconds. `timeoutMs` only turns "never" into a clear
 * failure naming `what`, before ava's own 90 s timeout; how soon the state came is never
 * asserted (on an overloaded machine starting a process alone can take many seconds).
 */
export async function until(check: () => boolean | Promise<boolean>, what: string, timeoutMs = 60_000): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  while (!(await check())) {
    if (performance.now() > deadline) throw new Error(`gave up after ${timeoutMs} ms waiting for: ${what}`);
    await delay(5);
  }
}

/** Resolves once `locks` has queued `count` writers in all (its `waits` counter, `lock_waits` in stats). */
export function writersQueued(locks: Pick<LockManager, 'waits'>, count: number): Promise<void> {
  return until(() => locks.waits >= count, `${count} writer(s) queued for a lock (waits is ${locks.waits})`);
}

/** The server's `stats` counters, asked over the protocol (for servers in another process). */
export async function stats(client: LineClient): Promise<Record<string, string>> {
  const reply = await client.request('stats');
  if (!reply?.startsWith('ok ')) throw new Error(`stats: ${reply}`);
  return Object.fromEntries(reply.slice(3).split(' ').map((pair) => pair.split('=') as [string, string]));
}

/** Tracks whether a promise has settled, to assert that a waiter is still waiting. */
export function track<T>(promise: Promise<T>): { promise: Promise<T>; readonly settled: boolean } {
  let settled = false;
  const tracked = promise.finally(() => {
    settled = true;
  });
  // The test awaits `promise`; a rejection is reported there, not as unhandled.
  tracked.catch(() => {});
  return {
    promise: tracked,
    get settled() {
      return settled;
    },
  };
}
