import pg from 'pg';
import { DEFAULTS } from '../config/defaults.js';
import { ConfigError, StoreError } from '../core/errors.js';
import type { SessionLock } from '../locks/lock-table.js';
import { isValidSessionId } from '../protocol/session-id.js';
import type { SessionData, SessionExpiry, SessionStore } from './contract.js';
import { StorageGuard, type StorageLogger } from './guard.js';
import { checkLifetime } from './lifetime.js';
import { PostgresCloses } from './postgres-closes.js';
import { PostgresLocks, queryPrepared } from './postgres-locks.js';
import { migrate, PostgresNames, slotOf } from './postgres-schema.js';
import { LOCK_LOST } from './lease-locks.js';

export interface PostgresStoreOptions {
  /** `postgres://user:password@host:port/database?…`; omitted, pg reads the PG* variables (PGHOST, …). */
  url?: string;
  /** The sessions table, `name` or `schema.name` (the schema must exist). Default `sessionserver_sessions`. */
  table?: string;
  /** Milliseconds a writer lock lives without renewal. Default 10000. */
  lockLease?: number;
  /** Connections in the pool (`postgresPoolSize`), besides one that listens for lock releases. Default 10. */
  poolSize?: number;
  /** Milliseconds one operation may take before it fails with `Storage unavailable` (`storageTimeout`); 0 waits forever. Default 1000. */
  timeout?: number;
  /** Where outages are logged (one warning when one starts, one info line when it ends). */
  log?: StorageLogger;
}

const COLLECT_BATCH = 500;
// A session past its own lifetime is gone for every reader, before any sweep deletes its row.
const ALIVE = `(lifetime IS NULL OR last_access > now() - lifetime * interval '1 second')`;
// What every recorded access sets (see access_slot in postgres-schema.ts).
const ACCESS_NOW = `last_access = now(), access_slot = ${slotOf('now()')}`;
// An access time is not worth an fsync: statements that only record one commit without waiting
// for the WAL flush (a crash may lose the last moments of access times, never values).
const NO_FLUSH = `(SELECT set_config('synchronous_commit', 'off', true)) AS no_flush`;
// SQLSTATE classes that mean "not now": connection exception (08), insufficient resources (53),
// operator intervention (57: shutdown, statement timeout), system error (58). Any other class
// (a bad value, a missing table) is a bug or a setup error and keeps its stack in the log.
const UNAVAILABLE_SQLSTATE = /^(08|53|57|58)/;

/** True when an error of pg means PostgreSQL cannot serve now (no connection, no answer in time, shutting down). */
export function isPostgresUnavailable(error: unknown): boolean {
  if (!(error instanceof Error) || error instanceof StoreError) return false;
  if (error instanceof pg.DatabaseError) return UNAVAILABLE_SQLSTATE.test(error.code ?? '');
  // pg's own: connection refused or ended, "timeout exceeded when trying to connect", "Query read timeout".
  return true;
}

/**
 * Fail fast, recover alone: connecting, waiting for a pooled connection and each query are
 * bounded by `timeoutMs`; the server itself cancels a statement running longer (so an
 * abandoned one does not hold row locks); a connection whose query failed or timed out is
 * discarded by the pool rather than reused; TCP keepalive notices a peer that vanished.
 */
export function connectionSettings(connection: pg.ClientConfig, timeoutMs: number): pg.ClientConfig {
  const bound = timeoutMs > 0 ? timeoutMs : undefined;
  return { ...connection, connectionTimeoutMillis: bound, query_timeout: bound, statement_timeout: bound, keepAlive: true };
}

/**
 * Sessions in PostgreSQL, shared by any number of sessionserver instances: one row per
 * session (values as a JSON object in a text column, so any string survives, NUL included),
 * written by one upsert; `last_access` is indexed for the gc sweep. Tables are created on
 * first start and migrated by version (postgres-schema.ts). Writer locks: see PostgresLocks.
 */
export class PostgresStore implements SessionStore {
  readonly name = 'postgres';
  readonly locks: PostgresLocks;
  readonly names: PostgresNames;
  readonly pool: pg.Pool;
  /** Bounds every operation in time and reports outages. */
  readonly guard: StorageGuard;
  /** `close`s, sent alone or together (group commit). */
  readonly closes: PostgresCloses;
  private closed = false;

  constructor(options: PostgresStoreOptions = {}) {
    this.names = new PostgresNames(options.table);
    const timeoutMs = options.timeout ?? DEFAULTS.storageTimeout;
    this.guard = new StorageGuard({ storage: this.name, timeoutMs, log: options.log, isUnavailable: isPostgresUnavailable });
    const connection = connectionSettings(options.url === undefined ? {} : { connectionString: options.url }, timeoutMs);
    const poolSize = options.poolSize ?? DEFAULTS.postgresPoolSize;
    if (!Number.isSafeInteger(poolSize) || poolSize < 1) throw new ConfigError('postgresPoolSize must be a whole number of connections, at least 1');
    this.pool = new pg.Pool({ ...connection, max: poolSize });
    // An idle pooled connection that breaks is discarded by the pool; the next query opens a new one.
    this.pool.on('error', () => {});
    this.locks = new PostgresLocks(this.pool, connection, this.names, options.lockLease, this.guard);
    this.closes = new PostgresCloses(this.pool, this.names, this.guard);
  }

  async open(): Promise<void> {
    try {
      // Listen first: an instance of another layout version starting now sees this one (checkLayout).
      await this.locks.start();
      await migrate(this.pool, this.names);
    } catch (error) {
      await this.locks.close();
      if (error instanceof ConfigError || (error instanceof StoreError && !/^cannot listen/.test(error.message))) throw error;
      throw new StoreError(`cannot prepare the PostgreSQL session tables: ${(error as Error).message}`);
    }
  }

  /** A prepared statement on a pooled connection: parsed and planned once per connection. */
  private query<R extends pg.QueryResultRow>(name: string, text: string, values: unknown[]): Promise<pg.QueryResult<R>> {
    return queryPrepared<R>(this.pool, name, text, values);
  }

  async load(id: string): Promise<SessionData | undefined> {
    // Opened for writing: read in the same round trip as the lock (PostgresLocks.tryLock).
    const loaded = this.locks.takeLoaded(checked(id));
    if (loaded) return loaded.data === null ? undefined : decode(loaded.data);
    return this.guard.run(async () => {
      // Read-only: a read, and a write only when the recorded access is stale (see the load function).
      const { rows } = await this.query<{ data: string | null }>('sessionserver_load', `SELECT ${this.names.load}($1) AS data`, [id]);
      const data = rows[0]?.data ?? null;
      return data === null ? undefined : decode(data);
    });
  }

  save(id: string, data: SessionData): Promise<void> {
    return this.guard.run(async () => {
      this.locks.forgetLoaded(checked(id));
      // Fenced: a writer whose lease ran out (and may have been taken over) must not overwrite
      // the new holder. FOR SHARE makes a takeover of the lock wait until this write commits,
      // so the new holder reads it (or this write finds the lock gone and is refused).
      const { rowCount } = await this.query(
        'sessionserver_save',
        `INSERT INTO ${this.names.sessions} (id, data, last_access, access_slot)
         SELECT $1, $2, now(), ${slotOf('now()')}
         WHERE $3::text IS NULL OR EXISTS (SELECT 1 FROM ${this.names.locks} WHERE id = $1 AND owner = $3 FOR SHARE)
         ON CONFLICT (id) DO UPDATE SET data = excluded.data, last_access = excluded.last_access, access_slot = excluded.access_slot`,
        [id, JSON.stringify(Object.fromEntries(data)), this.locks.tokenOf(id) ?? null],
      );
      if (rowCount !== 1) throw new StoreError(LOCK_LOST);
    });
  }

  /**
   * `close`: the fenced write and the release of the writer lock in one statement, so one
   * durable commit and one round trip (instead of a save and a separate DELETE), shared with
   * the other closes that queue up meanwhile (group commit: see PostgresCloses, which also says
   * how the lock row's delete by token fences a takeover). A lock already taken over is
   * neither released nor written, and the client is told.
   */
  async saveAndRelease(id: string, data: SessionData, lock: SessionLock): Promise<void> {
    await this.locks.saveAndRelease(id, lock, () => this.save(id, data), (token) => {
      this.locks.forgetLoaded(checked(id));
      return this.closes.saveAndRelease(id, JSON.stringify(Object.fromEntries(data)), token);
    });
  }

  destroy(id: string): Promise<boolean> {
    return this.guard.run(async () => {
      this.locks.forgetLoaded(checked(id));
      const { rowCount } = await this.query('sessionserver_destroy', `DELETE FROM ${this.names.sessions} WHERE id = $1`, [id]);
      return rowCount === 1;
    });
  }

  touch(id: string): Promise<boolean> {
    return this.guard.run(async () => {
      const { rowCount } = await this.query(
        'sessionserver_touch',
        `UPDATE ${this.names.sessions} SET ${ACCESS_NOW} FROM ${NO_FLUSH} WHERE id = $1 AND ${ALIVE}`,
        [checked(id)],
      );
      return rowCount === 1;
    });
  }

  setLifetime(id: string, seconds: number | null): Promise<boolean> {
    return this.guard.run(async () => {
      checkLifetime(seconds);
      const { rowCount } = await this.pool.query(
        `UPDATE ${this.names.sessions} SET lifetime = $2, ${ACCESS_NOW} WHERE id = $1 AND ${ALIVE}`,
        [checked(id), seconds],
      );
      return rowCount === 1;
    });
  }

  expiry(id: string): Promise<SessionExpiry | undefined> {
    return this.guard.run(async () => {
      const { rows } = await this.pool.query<{ lifetime: number | null; last_access: Date }>(
        `SELECT lifetime, last_access FROM ${this.names.sessions} WHERE id = $1 AND ${ALIVE}`,
        [checked(id)],
      );
      const row = rows[0];
      return row && { lifetime: row.lifetime, lastAccess: row.last_access.getTime() };
    });
  }

  ids(): Promise<string[]> {
    return this.guard.run(async () => {
      const { rows } = await this.pool.query<{ id: string }>(`SELECT id FROM ${this.names.sessions} WHERE ${ALIVE}`);
      return rows.map((row) => row.id);
    });
  }

  /**
   * Deletes the expired sessions in batches found through the access-slot indexes (never a
   * scan of every row), sparing those held by this instance's clients and those write-locked
   * by any instance; the delete checks again, as a client may have used a session meanwhile.
   * A session's own lifetime overrides `maxIdleMs`, longer or shorter.
   */
  async collect(maxIdleMs: number, isHeld: (id: string) => boolean): Promise<number> {
    const { sessions, locks } = this.names;
    // $1: the cut-off for sessions without an own lifetime; $2: now, as seconds since the epoch.
    // The slot conditions are implied by the exact ones; they let the partial indexes find the rows.
    const expired = `(s.lifetime IS NULL AND s.access_slot < ceil(extract(epoch FROM $1::timestamptz))::bigint AND s.last_access < $1
      OR s.lifetime IS NOT NULL AND s.access_slot + s.lifetime <= $2::bigint AND s.last_access <= now() - s.lifetime * interval '1 second')
      AND NOT EXISTS (SELECT 1 FROM ${locks} l WHERE l.id = s.id AND l.expires_at > clock_timestamp())`;
    // Each statement within the timeout: a long sweep goes on as long as PostgreSQL answers.
    const query = <R extends pg.QueryResultRow>(text: string, values: unknown[]) => this.guard.run(() => this.pool.query<R>(text, values));
    const { rows: now } = await query<{ cutoff: Date; now_s: string }>(
      `SELECT now() - $1::bigint * interval '1 millisecond' AS cutoff, ceil(extract(epoch FROM now()))::bigint AS now_s`,
      [Math.max(0, Math.floor(maxIdleMs))],
    );
    const { cutoff, now_s: nowSeconds } = now[0]!;
    // Expired rows this sweep leaves (held here, or used or locked meanwhile): not asked for again.
    const spared: string[] = [];
    let removed = 0;
    for (;;) {
      const { rows } = await query<{ id: string }>(
        `SELECT s.id FROM ${sessions} s WHERE ${expired} AND s.id <> ALL($3::text[]) LIMIT ${COLLECT_BATCH}`,
        [cutoff, nowSeconds, spared],
      );
      if (rows.length === 0) return removed;
      const idle = rows.map((row) => row.id).filter((id) => !isHeld(id));
      const deleted = new Set<string>();
      if (idle.length > 0) {
        // A row some statement holds now is in use, not idle: skipped, so the sweep never waits
        // for a batch of opens or closes (which hold several rows) and never deadlocks with one.
        const { rows: gone } = await query<{ id: string }>(
          `WITH doomed AS (SELECT s.id FROM ${sessions} s WHERE ${expired} AND s.id = ANY($3::text[]) FOR UPDATE OF s SKIP LOCKED)
           DELETE FROM ${sessions} s USING doomed WHERE s.id = doomed.id RETURNING s.id`,
          [cutoff, nowSeconds, idle],
        );
        for (const { id } of gone) deleted.add(id);
        removed += gone.length;
      }
      for (const { id } of rows) if (!deleted.has(id)) spared.push(id);
    }
  }

  count(): Promise<number> {
    return this.guard.run(async () => {
      const { rows } = await this.pool.query<{ count: number }>(`SELECT count(*)::integer AS count FROM ${this.names.sessions}`);
      return rows[0]!.count;
    });
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.locks.close();
    await this.pool.end();
  }
}

function checked(id: string): string {
  // Defence in depth: the server validates ids; the SQL is parameterized anyway.
  if (!isValidSessionId(id)) throw new StoreError('invalid session id reached the postgres store');
  return id;
}

function decode(text: string): SessionData {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    throw new StoreError('corrupt session row');
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) throw new StoreError('corrupt session row');
  return new Map(Object.entries(parsed).map(([key, value]) => [key, String(value)]));
}
