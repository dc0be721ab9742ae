import type { LockManager } from '../lock-table.js';

/** A session's values. Stores and callers never mutate a map they have handed over. */
export type SessionData = ReadonlyMap<string, string>;

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
}
