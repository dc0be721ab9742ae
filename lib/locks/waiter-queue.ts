import { LockTimeoutError, LockWaitAbortedError } from './errors.js';

interface Waiter<T> {
  resolve(value: T): void;
  leave(error: Error): void;
}

export interface WaiterQueueEvents {
  /** A waiter gave up after its timeout (counted for `stats`). */
  onTimeout?(): void;
  /** The last waiter left without being served (timeout or abort). */
  onEmpty?(): void;
}

/**
 * Writers waiting for one session: first come, first served, each with its own timeout
 * (LockTimeoutError) and abort signal (LockWaitAbortedError). The in-process lock table
 * and the shared-store lease locks both queue their writers here.
 */
export class WaiterQueue<T> {
  private readonly waiters: Waiter<T>[] = [];

  constructor(private readonly events: WaiterQueueEvents = {}) {}

  get length(): number {
    return this.waiters.length;
  }

  /** Queues a writer; resolves when `grant` reaches it. */
  wait(timeoutMs: number, signal?: AbortSignal): Promise<T> {
    if (signal?.aborted) return Promise.reject(new LockWaitAbortedError());
    return new Promise<T>((resolve, reject) => {
      const onAbort = () => waiter.leave(new LockWaitAbortedError());
      const timer = setTimeout(() => {
        this.events.onTimeout?.();
        waiter.leave(new LockTimeoutError());
      }, timeoutMs);
      const settle = () => {
        clearTimeout(timer);
        signal?.removeEventListener('abort', onAbort);
      };
      const waiter: Waiter<T> = {
        resolve(value) {
          settle();
          resolve(value);
        },
        leave: (error) => {
          settle();
          const index = this.waiters.indexOf(waiter);
          if (index !== -1) this.waiters.splice(index, 1);
          reject(error);
          if (this.waiters.length === 0) this.events.onEmpty?.();
        },
      };
      signal?.addEventListener('abort', onAbort, { once: true });
      this.waiters.push(waiter);
    });
  }

  /** Hands `value` to the longest-waiting writer; false when nobody waits. */
  grant(value: T): boolean {
    const waiter = this.waiters.shift();
    if (!waiter) return false;
    waiter.resolve(value);
    return true;
  }

  /** Ends every wait with LockWaitAbortedError (the server is stopping). */
  abortAll(): void {
    for (const waiter of [...this.waiters]) waiter.leave(new LockWaitAbortedError());
  }
}
