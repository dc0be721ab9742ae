import { WaiterQueue } from './waiter-queue.js';

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

interface LockState {
  holder: SessionLock;
  queue: WaiterQueue<SessionLock>;
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
      this.locks.set(sessionId, { holder: lock, queue: new WaiterQueue({ onTimeout: () => this.timeouts++ }) });
      return Promise.resolve(lock);
    }
    if (!signal?.aborted) this.waits++;
    return state.queue.wait(timeoutMs, signal);
  }

  isLocked(sessionId: string): boolean {
    return this.locks.has(sessionId);
  }

  /** Writers of this process queued for the session (observable proof that a writer waits). */
  waitingFor(sessionId: string): number {
    return this.locks.get(sessionId)?.queue.length ?? 0;
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
    const next = this.createLock(sessionId);
    state.holder = next;
    if (!state.queue.grant(next)) this.locks.delete(sessionId);
  }
}
