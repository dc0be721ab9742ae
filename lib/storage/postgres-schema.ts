import type pg from 'pg';
import { ConfigError, StoreError } from '../core/errors.js';
import { DEFAULTS } from '../config/defaults.js';

export const DEFAULT_POSTGRES_TABLE: string = DEFAULTS.postgresTable;

// Lower case only: an unquoted name in psql means the same table as our quoted one.
const VALID_TABLE = /^(?:([a-z_][a-z0-9_]*)\.)?([a-z_][a-z0-9_]*)$/;
const MAX_IDENTIFIER = 63;
const MAX_NAME = 48;

/** The quoted SQL names of the PostgreSQL driver's tables, all derived from one table name. */
export class PostgresNames {
  /** `(id, data, last_access, lifetime)`: one row per session. */
  readonly sessions: string;
  /** `(id, owner, expires_at, contended)`: one row per held writer lock. */
  readonly locks: string;
  /** `(version)`: which of MIGRATIONS have run. */
  readonly version: string;
  readonly accessIndex: string;
  readonly ownLifetimeIndex: string;
  /** The LISTEN/NOTIFY channel on which lock releases are announced (payload: session id). */
  readonly releaseChannel: string;
  /** Serializes migrations of concurrently starting instances. */
  readonly migrationLockKey: string;

  constructor(table: string = DEFAULT_POSTGRES_TABLE) {
    const match = VALID_TABLE.exec(table);
    // Derived names (`<name>_own_lifetime`, `<schema>.<name>_released`) must fit an identifier.
    if (!match || match[2]!.length > MAX_NAME || `${table}_released`.length > MAX_IDENTIFIER) {
      throw new ConfigError(
        `postgresTable must be [schema.]name in lower-case letters, digits and _ (name at most ${MAX_NAME}, all at most ${MAX_IDENTIFIER - 9} characters)`,
      );
    }
    const [, schema, name] = match;
    const qualify = (suffix: string) => (schema ? `"${schema}"."${name}${suffix}"` : `"${name}${suffix}"`);
    this.sessions = qualify('');
    this.locks = qualify('_locks');
    this.version = qualify('_schema');
    this.accessIndex = `"${name}_last_access"`;
    this.ownLifetimeIndex = `"${name}_own_lifetime"`;
    this.releaseChannel = `${table}_released`;
    this.migrationLockKey = `sessionserver schema ${table}`;
  }
}

/**
 * Each entry brings the schema from the previous version to the next; the version table
 * records how far a database has come. Append, never edit: released versions are history.
 */
const MIGRATIONS: Array<(names: PostgresNames) => string[]> = [
  // 1: sessions with their last access (indexed for the gc sweep) and lease rows for writer locks.
  // Lock rows live for seconds and are worth nothing after a crash: UNLOGGED spares them the WAL
  // (and the fsync per acquire and release); a crash or failover empties the table, and fenced
  // writes then refuse to overwrite anything on behalf of a holder that might have lost its lock.
  (n) => [
    `CREATE TABLE ${n.sessions} (
      id text PRIMARY KEY,
      data text NOT NULL,
      last_access timestamptz(3) NOT NULL DEFAULT now()
    )`,
    `CREATE INDEX ${n.accessIndex} ON ${n.sessions} (last_access)`,
    `CREATE UNLOGGED TABLE ${n.locks} (
      id text PRIMARY KEY,
      owner text NOT NULL,
      expires_at timestamptz NOT NULL,
      contended boolean NOT NULL DEFAULT false
    )`,
  ],
  // 2: a session's own lifetime in seconds (`ttl`); null means the server's max lifetime.
  (n) => [
    `ALTER TABLE ${n.sessions} ADD COLUMN lifetime integer`,
    `CREATE INDEX ${n.ownLifetimeIndex} ON ${n.sessions} (last_access) WHERE lifetime IS NOT NULL`,
  ],
];

export const SCHEMA_VERSION = MIGRATIONS.length;

// Creating or upgrading the tables may wait for another instance's migration or rewrite a
// large table: far more time than one session operation (storageTimeout) gets.
const MIGRATION_TIMEOUT_MS = 60_000;

/**
 * Creates or upgrades the tables (up to `target`, normally the latest version), once,
 * however many instances start at the same moment. Resolves with the version reached.
 */
export async function migrate(pool: pg.Pool, names: PostgresNames, target = SCHEMA_VERSION): Promise<number> {
  const client = await pool.connect();
  // pg honours a per-query query_timeout; its types do not list it.
  const query = <R extends pg.QueryResultRow>(text: string, values?: unknown[]) =>
    client.query<R>({ text, values, query_timeout: MIGRATION_TIMEOUT_MS } as pg.QueryConfig);
  let failure: Error | undefined;
  try {
    await query('BEGIN');
    await query(`SET LOCAL statement_timeout = ${MIGRATION_TIMEOUT_MS}`);
    await query('SELECT pg_advisory_xact_lock(hashtext($1))', [names.migrationLockKey]);
    await query(`CREATE TABLE IF NOT EXISTS ${names.version} (version integer NOT NULL)`);
    const { rows } = await query<{ version: number }>(`SELECT version FROM ${names.version}`);
    let version = rows[0]?.version ?? 0;
    if (rows.length === 0) await query(`INSERT INTO ${names.version} (version) VALUES (0)`);
    if (version > SCHEMA_VERSION) {
      throw new StoreError(`the session tables have schema version ${version}; this sessionserver knows only up to ${SCHEMA_VERSION}`);
    }
    for (; version < target; version++) {
      for (const statement of MIGRATIONS[version]!(names)) await query(statement);
    }
    await query(`UPDATE ${names.version} SET version = $1`, [version]);
    await query('COMMIT');
    return version;
  } catch (error) {
    failure = error as Error;
    await client.query('ROLLBACK').catch(() => {});
    throw error;
  } finally {
    // A connection that failed mid-migration is closed, not handed back to the pool.
    client.release(failure);
  }
}
