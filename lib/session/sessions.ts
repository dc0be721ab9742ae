import { performance } from 'node:perf_hooks';
import { CommandError } from '../core/errors.js';
import type { LockManager, SessionLock } from '../locks/lock-table.js';
import type { SessionServerHooks } from './hooks.js';
import { OpenSession, type SessionLimits, type SessionMode } from './open-session.js';
import type { SessionConnection } from './session-connection.js';
import type { SessionStore } from '../storage/contract.js';

/**
 * Opens, writes and releases sessions for connections: the one place that pairs writer
 * locks with storage, so a lock is never held without an owner and never released before
 * the owner's changes are on disk.
 */
export class Sessions {
  /** How many connections hold each session open (any mode): gc never collects these. */
  private readonly holders = new Map<string, number>();
  opened = 0;

  constructor(
    readonly store: SessionStore,
    readonly locks: LockManager,
    private readonly lockTimeoutMs: number,
    private readonly hooks: SessionServerHooks,
    /** What every write must fit in: maxSessionSize, and the store's own room when it has a limit. */
    private readonly limits: SessionLimits = { maxBytes: Number.POSITIVE_INFINITY },
  ) {}

  isHeld = (id: string): boolean => this.holders.has(id);

  get heldCount(): number {
    return this.holders.size;
  }

  /**
   * Opens `id` for the connection, first closing what it held. `r` needs an existing
   * session; `w`/`rw` wait for the writer lock and create the session when it is new.
   */
  async open(ctx: SessionConnection, id: string, mode: SessionMode): Promise<OpenSession> {
    if (ctx.session) await this.close(ctx);
    const lock = mode === 'r' ? null : await this.acquire(ctx, id);
    let session: OpenSession;
    try {
      const data = await this.store.load(id);
      if (data === undefined && mode === 'r') throw CommandError.of('E_OPEN_FAILED');
      session = new OpenSession(id, mode, data, lock, this.limits);
    } catch (error) {
      await lock?.release();
      throw error;
    }
    this.hold(id);
    ctx.session = session;
    this.opened++;
    if (this.hooks.sessionOpen.isUsed()) this.hooks.sessionOpen.call(ctx, session);
    // The client may have gone while we waited; its close handler saw no session, so release here.
    if (ctx.closed) await this.close(ctx);
    return session;
  }

  /** Writes pending changes (when writable) and releases the session. */
  async close(ctx: SessionConnection): Promise<void> {
    const session = ctx.session;
    if (!session) return;
    try {
      if (session.writable && session.dirty) {
        const lock = session.lock;
        if (lock && this.store.saveAndRelease) {
          // The store releases it with the write (one round trip), whatever the outcome.
          session.lock = null;
          await this.store.saveAndRelease(session.id, session.handOver(), lock);
        } else await this.store.save(session.id, session.handOver());
      }
    } finally {
      ctx.session = null;
      this.unhold(session.id);
      await this.releaseLock(session);
    }
    if (this.hooks.sessionClose.isUsed()) this.hooks.sessionClose.call(ctx, session);
  }

  /** Writes pending changes and keeps the session open read-only, freeing the writer lock. */
  async commit(ctx: SessionConnection, session: OpenSession): Promise<void> {
    if (session.writable && session.dirty) {
      const values = session.handOver();
      try {
        await this.store.save(session.id, values);
      } catch (error) {
        // Refused (store full) or failed: the changes stay pending, the writer lock stays held.
        session.restore(values);
        throw error;
      }
    }
    session.mode = 'r';
    await this.releaseLock(session);
    if (this.hooks.sessionCommit.isUsed()) this.hooks.sessionCommit.call(ctx, session);
  }

  async destroy(ctx: SessionConnection, session: OpenSession): Promise<void> {
    await this.store.destroy(session.id);
    session.handOver();
    ctx.session = null;
    this.unhold(session.id);
    await this.releaseLock(session);
    if (this.hooks.sessionDestroy.isUsed()) this.hooks.sessionDestroy.call(ctx, session);
  }

  /** Moves the session's values (pending ones included) to `newId` and deletes the old id. */
  async regenerate(ctx: SessionConnection, session: OpenSession, newId: string): Promise<void> {
    const newLock = await this.acquire(ctx, newId);
    const oldId = session.id;
    const values = session.handOver();
    try {
      await this.store.save(newId, values);
      await this.store.destroy(oldId);
    } catch (error) {
      // Either step failed: the session stays under its old id, with its lock and its
      // pending values; the new id is given up (best effort) and its lock released.
      session.restore(values);
      await this.store.destroy(newId).catch(() => {});
      await newLock.release();
      throw error;
    }
    const oldLock = session.lock;
    session.id = newId;
    session.lock = newLock;
    this.unhold(oldId);
    this.hold(newId);
    await oldLock?.release();
  }

  /** Waits for the writer lock, telling `lockWait` taps how long it took. */
  private async acquire(ctx: SessionConnection, id: string): Promise<SessionLock> {
    if (!this.hooks.lockWait.isUsed()) return this.locks.acquire(id, this.lockTimeoutMs, ctx.abortSignal);
    const started = performance.now();
    try {
      const lock = await this.locks.acquire(id, this.lockTimeoutMs, ctx.abortSignal);
      this.hooks.lockWait.call(ctx, { waitedMs: performance.now() - started, acquired: true });
      return lock;
    } catch (error) {
      this.hooks.lockWait.call(ctx, { waitedMs: performance.now() - started, acquired: false });
      throw error;
    }
  }

  private async releaseLock(session: OpenSession): Promise<void> {
    const lock: SessionLock | null = session.lock;
    session.lock = null;
    await lock?.release();
  }

  private hold(id: string): void {
    this.holders.set(id, (this.holders.get(id) ?? 0) + 1);
  }

  private unhold(id: string): void {
    const count = this.holders.get(id) ?? 0;
    if (count <= 1) this.holders.delete(id);
    else this.holders.set(id, count - 1);
  }
}
