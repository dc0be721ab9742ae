import { LockTimeoutError, LockWaitAbortedError } from '../core/errors.js';

/** A held writer lock on one session; release it exactly once. */
export interface SessionLock {
  readonly sessionId: string;
  release(): Promise<void> | void;
}

/**
 * Writer locks for sessions. Readers never take one: they do not wait for writers and
 * writers do not wait for them. A driver whose state is shared by many server instances
 * (Redis, PostgreSQL) brings its own implementation.
 */
export interface LockManager {
  /** Resolves with the lock, or rejects with LockTimeoutError / LockWaitAbortedError. */
  acquire(sessionId: string, timeoutMs: number, signal?: AbortSignal): Promise<SessionLock>;
  readonly waits: number;
  readonly timeouts: number;
  close?(): Promise<void>;
}

interface Waiter {
  grant(lock: SessionLock): void;
}

interface LockState {
  holder: SessionLock;
  waiters: Waiter[];
}

/** In-process writer locks with FIFO hand-off, for drivers whose state lives in this process. */
export class LockTable implements LockManager {
  private readonly locks = new Map<string, LockState>();
  waits = 0;
  timeouts = 0;

  acquire(sessionId: string, timeoutMs: number, signal?: AbortSignal): Promise<SessionLock> {
    const state = this.locks.get(sessionId);
    if (!state) {
      const lock = this.createLock(sessionId);
      this.locks.set(sessionId, { holder: lock, waiters: [] });
      return Promise.resolve(lock);
    }
    if (signal?.aborted) return Promise.reject(new LockWaitAbortedError());
    this.waits++;
    return new Promise<SessionLock>((resolve, reject) => {
      const leave = (error: Error) => {
        const index = state.waiters.indexOf(waiter);
        if (index !== -1) state.waiters.splice(index, 1);
        signal?.removeEventListener('abort', onAbort);
        reject(error);
      };
      const timer = setTimeout(() => {
        this.timeouts++;
        leave(new LockTimeoutError());
      }, timeoutMs);
      const onAbort = () => {
        clearTimeout(timer);
        leave(new LockWaitAbortedError());
      };
      const waiter: Waiter = {
        grant(lock) {
          clearTimeout(timer);
          signal?.removeEventListener('abort', onAbort);
          resolve(lock);
        },
      };
      signal?.addEventListener('abort', onAbort, { once: true });
      state.waiters.push(waiter);
    });
  }

  isLocked(sessionId: string): boolean {
    return this.locks.has(sessionId);
  }

  private createLock(sessionId: string): SessionLock {
    let released = false;
    const lock: SessionLock = {
      sessionId,
      release: () => {
        if (released) return;
        released = true;
        this.handOff(sessionId, lock);
      },
    };
    return lock;
  }

  private handOff(sessionId: string, previous: SessionLock): void {
    const state = this.locks.get(sessionId);
    if (!state || state.holder !== previous) return;
    const next = state.waiters.shift();
    if (!next) {
      this.locks.delete(sessionId);
      return;
    }
    state.holder = this.createLock(sessionId);
    next.grant(state.holder);
  }
}
