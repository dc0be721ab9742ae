import type { LockManager, SessionLock } from '../locks/lock-table.js';

/** A session's values. Stores and callers never mutate a map they have handed over. */
export type SessionData = ReadonlyMap<string, string>;

/** What `expiry()` reports about a stored session. */
export interface SessionExpiry {
  /** The session's own lifetime in seconds, or null when the server's max lifetime applies. */
  readonly lifetime: number | null;
  /** The last recorded access, in milliseconds since the epoch. */
  readonly lastAccess: number;
}

/**
 * The storage driver contract. Session ids reaching a store are already validated
 * (see session-id.ts); a store may rely on that but should not trust it blindly.
 */
export interface SessionStore {
  /** Short name for logs and `hello`: `memory`, `filesystem`, … */
  readonly name: string;
  /**
   * Writer locks for this store's sessions. Omit it and the server uses an in-process
   * LockTable, which is right only when no other process writes the same store.
   */
  readonly locks?: LockManager;
  /** Prepares the store (folders, connections, schema). */
  open(): Promise<void>;
  /** The session's values, or undefined when it does not exist. Records an access. */
  load(id: string): Promise<SessionData | undefined>;
  /** Replaces the whole session (creating it), durably before resolving. Records an access. */
  save(id: string, data: SessionData): Promise<void>;
  /**
   * Optional: `save`, then release the writer lock `lock` (granted by this store's `locks`), in
   * one step: `close` costs one round trip instead of two. The lock is released whatever the
   * outcome (one the store could not confirm is left to its lease, as a failed `release()` is).
   */
  saveAndRelease?(id: string, data: SessionData, lock: SessionLock): Promise<void>;
  /** Deletes the session; false when it did not exist. */
  destroy(id: string): Promise<boolean>;
  /** Records an access; false when the session does not exist. */
  touch(id: string): Promise<boolean>;
  /** Deletes sessions not accessed for `maxIdleMs`, sparing those `isHeld` names; returns how many. */
  collect(maxIdleMs: number, isHeld: (id: string) => boolean): Promise<number>;
  /** How many sessions exist, for `stats`. */
  count(): Promise<number>;
  /** Releases resources; pending writes have finished. */
  close(): Promise<void>;

  // ---- Optional: per-session lifetime (`ttl`) and id listing (`ids`). ----
  // A store without them still works; the server answers those commands with an `err`.

  /**
   * Gives the session its own lifetime: it expires once `seconds` pass without an access
   * (load, save, touch and setLifetime are accesses), whatever the server's max lifetime
   * says, longer or shorter. `null` removes it, so the max lifetime applies again. Records
   * an access. Resolves false, changing nothing, when the session does not exist or has expired.
   *
   * Once a session's own lifetime has passed it is gone for every reader, even before
   * `collect` removes it: `load` and `expiry` resolve undefined, `touch` and `setLifetime`
   * resolve false, `ids` leaves it out (`count` may still include it). `collect` removes
   * such sessions (unless held) whatever its `maxIdleMs`, and spares sessions whose own
   * lifetime has not passed even when they are idle longer than `maxIdleMs`.
   *
   * `save` replaces a session's values and keeps its lifetime; `destroy` removes both.
   * (Redis: a PEXPIRE of the lifetime refreshed on every access; SQL: a nullable column.)
   */
  setLifetime?(id: string, seconds: number | null): Promise<boolean>;
  /** The session's own lifetime and last access, without recording an access; undefined when missing or expired. */
  expiry?(id: string): Promise<SessionExpiry | undefined>;
  /**
   * The ids of all existing, unexpired sessions, in no particular order. The server calls
   * it only when id listing is enabled (`listSessionIds`): ids are credentials.
   */
  ids?(): Promise<string[]>;
  /**
   * Bytes of session data (UTF-8 keys and values) the store can still take, for a store
   * with a memory limit (the memory store's maxMemory). The server then refuses a write
   * that would not fit once saved, with `err Storage memory limit reached (maxMemory)`;
   * `save` refuses such a write too (a CommandError E_STORE_FULL), changing nothing.
   */
  bytesFree?(): number;
}
