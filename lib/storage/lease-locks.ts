import { randomBytes } from 'node:crypto';
import { ConfigError, StoreError } from '../core/errors.js';
import { LockWaitAbortedError } from '../locks/errors.js';
import type { LockManager, SessionLock } from '../locks/lock-table.js';
import { WaiterQueue } from '../locks/waiter-queue.js';
import { DEFAULTS } from '../config/defaults.js';

/** A fenced write found the lock gone: another writer may have the session now. */
export const LOCK_LOST = 'not written: the writer lock on this session was lost (its lease ran out)';

/** How long a writer lock lives without renewal unless configured (`lockLease`). */
export const DEFAULT_LOCK_LEASE_MS: number = DEFAULTS.lockLease;
// A waiter re-checks this long after the holder's lease should have ended (clock jitter).
const RECHECK_SLACK_MS = 5;
// After a failed round trip to the store, a waiter tries again this soon.
const RETRY_AFTER_ERROR_MS = 200;

/** The result of one attempt: acquired, or the holder's lease ends in `retryInMs`. */
export type LockAttempt = { acquired: true } | { acquired: false; retryInMs: number };

/** This instance's writers waiting for one session, and the state of asking the store for it. */
interface WaitQueue {
  waiters: WaiterQueue<SessionLock>;
  attempting: boolean;
  /** A release was announced while an attempt was in flight: try again at once. */
  again: boolean;
  recheck: NodeJS.Timeout | null;
}

/** A lock the store may hold for this instance although no client of ours does: its attempt or release got no answer. */
interface AbandonedLock {
  token: string;
  /** After this (ms since the epoch) the lease has freed it anyway. */
  until: number;
}

interface HeldLock {
  token: string;
  /** The renewal found the lock gone or owned by another: the lease ran out (stalled process, store failover). */
  lost: boolean;
}

/**
 * Writer locks kept in a store that many server instances share: a lock is a record
 * holding an owner token with a lease. The holding instance renews its leases (one timer
 * for all of them) while its clients hold the sessions, so a killed instance's locks free
 * themselves within one lease. A release deletes the record only if the token still
 * matches and announces the release; waiters on every instance wake at once, and re-check
 * when the holder's lease would end in case an announcement was missed or the holder died.
 *
 * Subclasses supply the store's five operations: try, release, renew, and start/stop
 * listening for releases of one session (calling `released(id)` when one is announced).
 */
export abstract class LeaseLockManager implements LockManager {
  waits = 0;
  timeouts = 0;
  /** Leases that ran out under a holder of this instance (its later writes are refused). */
  lostLeases = 0;
  readonly leaseMs: number;
  private readonly instance = randomBytes(6).toString('hex');
  private sequence = 0;
  private readonly held = new Map<string, HeldLock>();
  private readonly queues = new Map<string, WaitQueue>();
  private readonly abandoned = new Map<string, AbandonedLock[]>();
  private abandonedPrunedAt = 0;
  private renewTimer: NodeJS.Timeout | null = null;
  private renewing = false;
  private closed = false;

  constructor(leaseMs = DEFAULT_LOCK_LEASE_MS) {
    if (!Number.isSafeInteger(leaseMs) || leaseMs < 30) throw new ConfigError('lockLease must be a whole number of milliseconds, at least 30');
    this.leaseMs = leaseMs;
  }

  /** Takes the lock for `token` if nobody holds it (or the holder's lease has run out). */
  protected abstract tryLock(sessionId: string, token: string): Promise<LockAttempt>;
  /** Deletes the lock if `token` still owns it and announces the release. */
  protected abstract unlock(sessionId: string, token: string): Promise<void>;
  /** Extends the leases of these locks; returns the ids whose lock no longer carries our token. */
  protected abstract renew(locks: ReadonlyMap<string, string>): Promise<string[]>;
  /** Starts delivering release announcements for the session; resolves once they flow. */
  protected abstract watch(sessionId: string): Promise<void>;
  protected abstract unwatch(sessionId: string): Promise<void>;

  /** The token of the lock this instance holds on the session, for fenced writes. */
  tokenOf(sessionId: string): string | undefined {
    return this.held.get(sessionId)?.token;
  }

  /** How many locks this instance holds. */
  get heldCount(): number {
    return this.held.size;
  }

  async acquire(sessionId: string, timeoutMs: number, signal?: AbortSignal): Promise<SessionLock> {
    if (this.closed || signal?.aborted) throw new LockWaitAbortedError();
    if (!this.queues.has(sessionId) && !this.held.has(sessionId)) {
      const token = this.newToken();
      this.clearAbandoned(sessionId);
      let attempt: LockAttempt;
      try {
        attempt = await this.tryLock(sessionId, token);
      } catch (error) {
        // Timed out or cut off: the store may have taken the lock all the same.
        this.abandon(sessionId, token);
        throw error;
      }
      if (attempt.acquired && this.closed) {
        await this.unlock(sessionId, token).catch(() => {});
        throw new LockWaitAbortedError();
      }
      if (attempt.acquired) return this.grant(sessionId, token);
    }
    return this.wait(sessionId, timeoutMs, signal);
  }

  private wait(sessionId: string, timeoutMs: number, signal?: AbortSignal): Promise<SessionLock> {
    if (this.closed || signal?.aborted) return Promise.reject(new LockWaitAbortedError());
    this.waits++;
    let queue = this.queues.get(sessionId);
    const isNew = !queue;
    if (!queue) {
      const created: WaitQueue = {
        waiters: new WaiterQueue<SessionLock>({ onTimeout: () => this.timeouts++, onEmpty: () => this.dropQueue(sessionId, created) }),
        attempting: false,
        again: false,
        recheck: null,
      };
      queue = created;
      this.queues.set(sessionId, queue);
    }
    const promise = queue.waiters.wait(timeoutMs, signal);
    if (isNew) {
      // Listen first, then try: a release between a failed try and the subscription is not missed.
      this.watch(sessionId).then(
        () => this.pump(sessionId),
        () => this.scheduleRecheck(queue, sessionId, RETRY_AFTER_ERROR_MS),
      );
    }
    return promise;
  }

  /** Called by the subclass when the store announces that the session's lock was released. */
  protected released(sessionId: string): void {
    if (this.queues.has(sessionId)) void this.pump(sessionId);
  }

  /** Every waiter of this instance looks again now (announcements may have been missed, e.g. during a reconnect). */
  protected wakeAll(): void {
    for (const sessionId of this.queues.keys()) void this.pump(sessionId);
  }

  /** Tries to take the lock for the first waiter; on failure sleeps until a release or the lease's end. */
  private async pump(sessionId: string): Promise<void> {
    const queue = this.queues.get(sessionId);
    if (!queue || this.closed) return;
    if (queue.attempting) {
      queue.again = true;
      return;
    }
    if (queue.recheck) clearTimeout(queue.recheck);
    queue.recheck = null;
    queue.attempting = true;
    let retryInMs = -1;
    try {
      do {
        queue.again = false;
        // A lock this instance holds is handed on by its release, which pumps again.
        if (queue.waiters.length === 0 || this.held.has(sessionId)) return;
        const token = this.newToken();
        this.clearAbandoned(sessionId);
        let attempt: LockAttempt;
        try {
          attempt = await this.tryLock(sessionId, token);
        } catch {
          this.abandon(sessionId, token);
          attempt = { acquired: false, retryInMs: RETRY_AFTER_ERROR_MS };
        }
        if (attempt.acquired && this.closed) await this.unlock(sessionId, token).catch(() => {});
        if (this.closed) return;
        if (attempt.acquired) {
          if (queue.waiters.length > 0) queue.waiters.grant(this.grant(sessionId, token));
          // Everyone left while we were asking: give the lock straight back.
          else await this.unlock(sessionId, token).catch(() => {});
          retryInMs = this.leaseMs;
          return;
        }
        retryInMs = attempt.retryInMs;
      } while (queue.again);
    } finally {
      queue.attempting = false;
      if (queue.waiters.length === 0) this.dropQueue(sessionId, queue);
      else if (retryInMs >= 0 && this.queues.get(sessionId) === queue) this.scheduleRecheck(queue, sessionId, retryInMs);
    }
  }

  private scheduleRecheck(queue: WaitQueue, sessionId: string, afterMs: number): void {
    if (this.closed || this.queues.get(sessionId) !== queue) return;
    if (queue.recheck) clearTimeout(queue.recheck);
    const delay = Math.min(Math.max(afterMs, 0) + RECHECK_SLACK_MS, this.leaseMs);
    queue.recheck = setTimeout(() => {
      queue.recheck = null;
      void this.pump(sessionId);
    }, delay);
  }

  private dropQueue(sessionId: string, queue: WaitQueue): void {
    if (this.queues.get(sessionId) !== queue || queue.attempting) return;
    if (queue.recheck) clearTimeout(queue.recheck);
    this.queues.delete(sessionId);
    this.unwatch(sessionId).catch(() => {});
  }

  private grant(sessionId: string, token: string): SessionLock {
    this.held.set(sessionId, { token, lost: false });
    this.startRenewing();
    return new GrantedLock(this, sessionId, token);
  }

  /**
   * Ends a granted lock once: released (`release` true), or handed over to a store operation
   * (returns its token). Called by the lock's own `release()` and by takeRelease only.
   */
  endGranted(lock: GrantedLock, release: boolean): Promise<void> | string | undefined {
    if (lock.ended || (!release && this.closed)) return undefined;
    lock.ended = true;
    const { sessionId, token } = lock;
    if (this.held.get(sessionId)?.token === token) this.held.delete(sessionId);
    if (!release) return token;
    if (this.closed) return undefined;
    return this.releaseNow(sessionId, token);
  }

  private async releaseNow(sessionId: string, token: string): Promise<void> {
    // A failed release is not the client's problem: the lease frees the lock, or the
    // next writer of this instance on the session deletes it (clearAbandoned).
    await this.unlock(sessionId, token).catch(() => this.abandon(sessionId, token));
    if (this.queues.has(sessionId)) void this.pump(sessionId);
  }

  /**
   * Takes over the release of `lock` (granted here, not yet released) for a store operation
   * that releases it in the same round trip as other work (a save on close). Returns the
   * lock's token, or undefined when the lock is not live; `lock.release()` does nothing after.
   * The caller must report the outcome with releaseHandedOver.
   */
  takeRelease(lock: SessionLock): string | undefined {
    if (!(lock instanceof GrantedLock) || lock.manager !== this) return undefined;
    return this.endGranted(lock, false) as string | undefined;
  }

  /**
   * `close` for a store that writes and releases in one round trip: `writeAndRelease(token)`
   * resolves true when it wrote (the lock was still ours). A lock that is not live any more
   * takes the plain way (`save`, then `release`), which fails as it should. A write that got
   * no answer leaves the lock to its lease.
   */
  async saveAndRelease(sessionId: string, lock: SessionLock, save: () => Promise<void>, writeAndRelease: (token: string) => Promise<boolean>): Promise<void> {
    const token = this.takeRelease(lock);
    if (token === undefined) {
      try {
        await save();
      } finally {
        await lock.release();
      }
      return;
    }
    let settled = false;
    try {
      const written = await writeAndRelease(token);
      settled = true;
      if (!written) throw new StoreError(LOCK_LOST);
    } finally {
      this.releaseHandedOver(sessionId, token, settled);
    }
  }

  /** Ends a release taken over: `settled` false when the store may still hold the lock (no answer). */
  releaseHandedOver(sessionId: string, token: string, settled: boolean): void {
    if (!settled) this.abandon(sessionId, token);
    if (this.queues.has(sessionId) && !this.closed) void this.pump(sessionId);
  }

  /**
   * Remembers a lock the store may hold for us after an attempt or a release that got no
   * answer (a timeout: the command may still have run). Its lease frees it in the end; until
   * then the next writer of this instance on the session deletes it, so that writer need not
   * wait out a lease nobody holds. Entries older than a lease are dropped on the way.
   */
  private abandon(sessionId: string, token: string, until = Date.now() + this.leaseMs): void {
    const now = Date.now();
    const list = this.abandoned.get(sessionId);
    const entry = { token, until };
    if (list) list.push(entry);
    else this.abandoned.set(sessionId, [entry]);
    if (now - this.abandonedPrunedAt < this.leaseMs) return;
    this.abandonedPrunedAt = now;
    for (const [id, entries] of this.abandoned) {
      const live = entries.filter((abandoned) => abandoned.until > now);
      if (live.length === 0) this.abandoned.delete(id);
      else this.abandoned.set(id, live);
    }
  }

  /**
   * Deletes the session's abandoned locks (compare-and-delete by token, so never another's).
   * Not awaited: the attempt that follows on the same connection comes after it (Redis), or
   * is woken by its release announcement (PostgreSQL marks the lock contended first).
   */
  private clearAbandoned(sessionId: string): void {
    const entries = this.abandoned.get(sessionId);
    if (!entries) return;
    this.abandoned.delete(sessionId);
    const now = Date.now();
    for (const { token, until } of entries) {
      if (until > now) this.unlock(sessionId, token).catch(() => this.abandon(sessionId, token, until));
    }
  }

  private newToken(): string {
    return `${this.instance}:${++this.sequence}`;
  }

  private startRenewing(): void {
    if (this.renewTimer || this.closed) return;
    // A third of the lease: two renewals may fail before a healthy holder loses its lock.
    this.renewTimer = setInterval(() => void this.renewAll(), Math.floor(this.leaseMs / 3));
    this.renewTimer.unref();
  }

  private async renewAll(): Promise<void> {
    if (this.renewing) return;
    if (this.held.size === 0) {
      if (this.renewTimer) clearInterval(this.renewTimer);
      this.renewTimer = null;
      return;
    }
    this.renewing = true;
    try {
      const tokens = new Map<string, string>();
      for (const [id, lock] of this.held) if (!lock.lost) tokens.set(id, lock.token);
      if (tokens.size === 0) return;
      for (const id of await this.renew(tokens)) {
        const lock = this.held.get(id);
        if (lock && lock.token === tokens.get(id) && !lock.lost) {
          lock.lost = true;
          this.lostLeases++;
        }
      }
    } catch {
      // The store is unreachable; the next tick tries again while the leases last.
    } finally {
      this.renewing = false;
    }
  }

  /** Stops renewing, ends every wait (LockWaitAbortedError) and releases this instance's locks. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (this.renewTimer) clearInterval(this.renewTimer);
    this.renewTimer = null;
    for (const [sessionId, queue] of this.queues) {
      if (queue.recheck) clearTimeout(queue.recheck);
      this.queues.delete(sessionId);
      queue.waiters.abortAll();
    }
    const held = [...this.held];
    this.held.clear();
    await Promise.all(held.map(([sessionId, lock]) => this.unlock(sessionId, lock.token).catch(() => {})));
  }
}

/** A lock granted by a LeaseLockManager: released once, by its holder or by a store operation (takeRelease). */
class GrantedLock implements SessionLock {
  ended = false;

  constructor(
    readonly manager: LeaseLockManager,
    readonly sessionId: string,
    readonly token: string,
  ) {}

  async release(): Promise<void> {
    await this.manager.endGranted(this, true);
  }
}
