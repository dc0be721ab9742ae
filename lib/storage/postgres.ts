import pg from 'pg';
import { StoreError } from '../core/errors.js';
import { isValidSessionId } from '../protocol/session-id.js';
import type { SessionData, SessionExpiry, SessionStore } from './contract.js';
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
}

const COLLECT_BATCH = 500;
// A session past its own lifetime is gone for every reader, before any sweep deletes its row.
const ALIVE = `(lifetime IS NULL OR last_access > now() - lifetime * interval '1 second')`;
// An access time is not worth an fsync: statements that only record one commit without waiting
// for the WAL flush (a crash may lose the last moments of access times, never values).
const NO_FLUSH = `(SELECT set_config('synchronous_commit', 'off', true)) AS no_flush`;

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
  private closed = false;

  constructor(options: PostgresStoreOptions = {}) {
    this.names = new PostgresNames(options.table);
    const connection: pg.ClientConfig = options.url === undefined ? {} : { connectionString: options.url };
    this.pool = new pg.Pool({ ...connection, max: options.poolSize ?? 10 });
    // An idle pooled connection that breaks is discarded by the pool; the next query opens a new one.
    this.pool.on('error', () => {});
    this.locks = new PostgresLocks(this.pool, connection, this.names, options.lockLease);
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

  async load(id: string): Promise<SessionData | undefined> {
    const { rows } = await this.pool.query<{ data: string }>(
      `UPDATE ${this.names.sessions} SET last_access = now() FROM ${NO_FLUSH} WHERE id = $1 AND ${ALIVE} RETURNING data`,
      [checked(id)],
    );
    return rows.length === 0 ? undefined : decode(rows[0]!.data);
  }

  async save(id: string, data: SessionData): Promise<void> {
    // Fenced: a writer whose lease ran out (and may have been taken over) must not overwrite the new holder.
    const { rowCount } = await this.pool.query(
      `INSERT INTO ${this.names.sessions} (id, data, last_access)
       SELECT $1, $2, now()
       WHERE $3::text IS NULL OR EXISTS (SELECT 1 FROM ${this.names.locks} WHERE id = $1 AND owner = $3)
       ON CONFLICT (id) DO UPDATE SET data = excluded.data, last_access = excluded.last_access`,
      [checked(id), JSON.stringify(Object.fromEntries(data)), this.locks.tokenOf(id) ?? null],
    );
    if (rowCount !== 1) throw new StoreError('not written: the writer lock on this session was lost (its lease ran out)');
  }

  async destroy(id: string): Promise<boolean> {
    const { rowCount } = await this.pool.query(`DELETE FROM ${this.names.sessions} WHERE id = $1`, [checked(id)]);
    return rowCount === 1;
  }

  async touch(id: string): Promise<boolean> {
    const { rowCount } = await this.pool.query(
      `UPDATE ${this.names.sessions} SET last_access = now() FROM ${NO_FLUSH} WHERE id = $1 AND ${ALIVE}`,
      [checked(id)],
    );
    return rowCount === 1;
  }

  async setLifetime(id: string, seconds: number | null): Promise<boolean> {
    const { rowCount } = await this.pool.query(
      `UPDATE ${this.names.sessions} SET lifetime = $2, last_access = now() WHERE id = $1 AND ${ALIVE}`,
      [checked(id), seconds],
    );
    return rowCount === 1;
  }

  async expiry(id: string): Promise<SessionExpiry | undefined> {
    const { rows } = await this.pool.query<{ lifetime: number | null; last_access: Date }>(
      `SELECT lifetime, last_access FROM ${this.names.sessions} WHERE id = $1 AND ${ALIVE}`,
      [checked(id)],
    );
    const row = rows[0];
    return row && { lifetime: row.lifetime, lastAccess: row.last_access.getTime() };
  }

  async ids(): Promise<string[]> {
    const { rows } = await this.pool.query<{ id: string }>(`SELECT id FROM ${this.names.sessions} WHERE ${ALIVE}`);
    return rows.map((row) => row.id);
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
    const { rows: now } = await this.pool.query<{ cutoff: Date }>(`SELECT now() - $1::bigint * interval '1 millisecond' AS cutoff`, [
      Math.max(0, Math.floor(maxIdleMs)),
    ]);
    const cutoff = now[0]!.cutoff;
    let after: { lastAccess: Date | string; id: string } = { lastAccess: '-infinity', id: '' };
    let removed = 0;
    for (;;) {
      const { rows } = await this.pool.query<{ id: string; last_access: Date }>(
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
      const { rowCount } = await this.pool.query(`DELETE FROM ${sessions} s WHERE ${expired} AND s.id = ANY($2::text[])`, [cutoff, idle]);
      removed += rowCount ?? 0;
    }
  }

  async count(): Promise<number> {
    const { rows } = await this.pool.query<{ count: number }>(`SELECT count(*)::integer AS count FROM ${this.names.sessions}`);
    return rows[0]!.count;
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
