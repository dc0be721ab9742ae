import pg from 'pg';
import { DEFAULTS } from '../config/defaults.js';
import { StoreError } from '../core/errors.js';
import { isValidSessionId } from '../protocol/session-id.js';
import type { SessionData, SessionExpiry, SessionStore } from './contract.js';
import { StorageGuard, type StorageLogger } from './guard.js';
import { checkLifetime } from './lifetime.js';
import { PostgresLocks } from './postgres-locks.js';
import { migrate, PostgresNames } from './postgres-schema.js';

export interface PostgresStoreOptions {
  /** `postgres://user:password@host:port/database?…`; omitted, pg reads the PG* variables (PGHOST, …). */
  url?: string;
  /** The sessions table, `name` or `schema.name` (the schema must exist). Default `sessionserver_sessions`. */
  table?: string;
  /** Milliseconds a writer lock lives without renewal. Default 10000. */
  lockLease?: number;
  /** Connections in the pool. Default 10. */
  poolSize?: number;
  /** Milliseconds one operation may take before it fails with `Storage unavailable` (`storageTimeout`); 0 waits forever. Default 1000. */
  timeout?: number;
  /** Where outages are logged (one warning when one starts, one info line when it ends). */
  log?: StorageLogger;
}

const COLLECT_BATCH = 500;
// A session past its own lifetime is gone for every reader, before any sweep deletes its row.
const ALIVE = `(lifetime IS NULL OR last_access > now() - lifetime * interval '1 second')`;
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
  private closed = false;

  constructor(options: PostgresStoreOptions = {}) {
    this.names = new PostgresNames(options.table);
    const timeoutMs = options.timeout ?? DEFAULTS.storageTimeout;
    this.guard = new StorageGuard({ storage: this.name, timeoutMs, log: options.log, isUnavailable: isPostgresUnavailable });
    const connection = connectionSettings(options.url === undefined ? {} : { connectionString: options.url }, timeoutMs);
    this.pool = new pg.Pool({ ...connection, max: options.poolSize ?? 10 });
    // An idle pooled connection that breaks is discarded by the pool; the next query opens a new one.
    this.pool.on('error', () => {});
    this.locks = new PostgresLocks(this.pool, connection, this.names, options.lockLease, this.guard);
  }

  async open(): Promise<void> {
    try {
      await migrate(this.pool, this.names);
    } catch (error) {
      if (error instanceof StoreError) throw error;
      throw new StoreError(`cannot prepare the PostgreSQL session tables: ${(error as Error).message}`);
    }
    await this.locks.start();
  }

  load(id: string): Promise<SessionData | undefined> {
    return this.guard.run(async () => {
      const { rows } = await this.pool.query<{ data: string }>(
        `UPDATE ${this.names.sessions} SET last_access = now() FROM ${NO_FLUSH} WHERE id = $1 AND ${ALIVE} RETURNING data`,
        [checked(id)],
      );
      return rows.length === 0 ? undefined : decode(rows[0]!.data);
    });
  }

  save(id: string, data: SessionData): Promise<void> {
    return this.guard.run(async () => {
      // Fenced: a writer whose lease ran out (and may have been taken over) must not overwrite the new holder.
      const { rowCount } = await this.pool.query(
        `INSERT INTO ${this.names.sessions} (id, data, last_access)
         SELECT $1, $2, now()
         WHERE $3::text IS NULL OR EXISTS (SELECT 1 FROM ${this.names.locks} WHERE id = $1 AND owner = $3)
         ON CONFLICT (id) DO UPDATE SET data = excluded.data, last_access = excluded.last_access`,
        [checked(id), JSON.stringify(Object.fromEntries(data)), this.locks.tokenOf(id) ?? null],
      );
      if (rowCount !== 1) throw new StoreError('not written: the writer lock on this session was lost (its lease ran out)');
    });
  }

  destroy(id: string): Promise<boolean> {
    return this.guard.run(async () => {
      const { rowCount } = await this.pool.query(`DELETE FROM ${this.names.sessions} WHERE id = $1`, [checked(id)]);
      return rowCount === 1;
    });
  }

  touch(id: string): Promise<boolean> {
    return this.guard.run(async () => {
      const { rowCount } = await this.pool.query(
        `UPDATE ${this.names.sessions} SET last_access = now() FROM ${NO_FLUSH} WHERE id = $1 AND ${ALIVE}`,
        [checked(id)],
      );
      return rowCount === 1;
    });
  }

  setLifetime(id: string, seconds: number | null): Promise<boolean> {
    return this.guard.run(async () => {
      checkLifetime(seconds);
      const { rowCount } = await this.pool.query(
        `UPDATE ${this.names.sessions} SET lifetime = $2, last_access = now() WHERE id = $1 AND ${ALIVE}`,
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
   * Pages through the expired sessions in last-access order (the indexes), sparing those
   * held by this instance's clients and those write-locked by any instance; the delete
   * checks again, as a client may have used a session meanwhile. A session's own lifetime
   * overrides `maxIdleMs`, longer or shorter.
   */
  async collect(maxIdleMs: number, isHeld: (id: string) => boolean): Promise<number> {
    const { sessions, locks } = this.names;
    const expired = `(s.lifetime IS NULL AND s.last_access < $1
      OR s.lifetime IS NOT NULL AND s.last_access <= now() - s.lifetime * interval '1 second')
      AND NOT EXISTS (SELECT 1 FROM ${locks} l WHERE l.id = s.id AND l.expires_at > clock_timestamp())`;
    // Each statement within the timeout: a long sweep goes on as long as PostgreSQL answers.
    const query = <R extends pg.QueryResultRow>(text: string, values: unknown[]) => this.guard.run(() => this.pool.query<R>(text, values));
    const { rows: now } = await query<{ cutoff: Date }>(`SELECT now() - $1::bigint * interval '1 millisecond' AS cutoff`, [
      Math.max(0, Math.floor(maxIdleMs)),
    ]);
    const cutoff = now[0]!.cutoff;
    let after: { lastAccess: Date | string; id: string } = { lastAccess: '-infinity', id: '' };
    let removed = 0;
    for (;;) {
      const { rows } = await query<{ id: string; last_access: Date }>(
        `SELECT s.id, s.last_access FROM ${sessions} s
         WHERE ${expired} AND (s.last_access, s.id) > ($2::timestamptz, $3)
         ORDER BY s.last_access, s.id LIMIT ${COLLECT_BATCH}`,
        [cutoff, after.lastAccess, after.id],
      );
      if (rows.length === 0) return removed;
      const last = rows[rows.length - 1]!;
      after = { lastAccess: last.last_access, id: last.id };
      const idle = rows.map((row) => row.id).filter((id) => !isHeld(id));
      if (idle.length === 0) continue;
      const { rowCount } = await query(`DELETE FROM ${sessions} s WHERE ${expired} AND s.id = ANY($2::text[])`, [cutoff, idle]);
      removed += rowCount ?? 0;
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
