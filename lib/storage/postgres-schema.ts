import type pg from 'pg';
import { ConfigError, StoreError } from '../core/errors.js';
import { DEFAULTS } from '../config/defaults.js';

export const DEFAULT_POSTGRES_TABLE: string = DEFAULTS.postgresTable;

// Lower case only: an unquoted name in psql means the same table as our quoted one.
/** The width of an access slot (seconds): an access moves a session's sweep index entry at most this often. */
export const ACCESS_SLOT_SECONDS = 60;
/** A read within this many milliseconds of the recorded access does not record it again. */
export const ACCESS_PRECISION_MS = 250;

/** SQL: the access slot of a timestamp expression. */
export function slotOf(timestamp: string): string {
  return `(floor(extract(epoch FROM ${timestamp}) / ${ACCESS_SLOT_SECONDS})::bigint * ${ACCESS_SLOT_SECONDS})`;
}

const VALID_TABLE = /^(?:([a-z_][a-z0-9_]*)\.)?([a-z_][a-z0-9_]*)$/;
const MAX_IDENTIFIER = 63;
const MAX_NAME = 48;

/** The quoted SQL names of the PostgreSQL driver's tables, all derived from one table name. */
export class PostgresNames {
  /** `(id, data, last_access, lifetime, access_slot)`: one row per session. */
  readonly sessions: string;
  /** `(id, owner, expires_at, contended)`: one row per held writer lock. */
  readonly locks: string;
  /** `(version)`: which of MIGRATIONS have run. */
  readonly version: string;
  /** Index names of earlier versions, dropped by migration 3. */
  readonly accessIndex: string;
  readonly ownLifetimeIndex: string;
  /** Sessions without an own lifetime, by access slot (the gc sweep's `maxIdleMs`). */
  readonly idleIndex: string;
  /** Sessions with an own lifetime, by the slot in which it ends. */
  readonly expiryIndex: string;
  /** Server-side function: takes a writer lock and reads the session in one round trip. */
  readonly lockAndLoad: string;
  /** Server-side function: reads a session, recording the access only when the recorded one is stale. */
  readonly load: string;
  /** The table name as configured, for messages. */
  readonly table: string;
  /**
   * The LISTEN/NOTIFY channel on which lock releases are announced (payload: a hash of the
   * session id). It names the layout version: instances of different versions never hear each
   * other, and a starting instance recognizes another version by its channel (checkLayout).
   */
  readonly releaseChannel: string;
  /** The channel every version listens on: `<table>_released` (up to version 2) or `<table>_released_v<N>`. */
  readonly releaseChannelPrefix: string;
  /** Serializes migrations of concurrently starting instances. */
  readonly migrationLockKey: string;
  /** `"<schema>"."<name><suffix>"`: a name beside the sessions table, in its schema. */
  readonly qualify: (suffix: string) => string;

  constructor(table: string = DEFAULT_POSTGRES_TABLE) {
    const match = VALID_TABLE.exec(table);
    // Derived names (`<name>_own_lifetime`, `<schema>.<name>_released_v3`) must fit an identifier.
    if (!match || match[2]!.length > MAX_NAME || `${table}${CHANNEL_SUFFIX}`.length > MAX_IDENTIFIER) {
      throw new ConfigError(
        `postgresTable must be [schema.]name in lower-case letters, digits and _ (name at most ${MAX_NAME}, all at most ${MAX_IDENTIFIER - CHANNEL_SUFFIX.length} characters)`,
      );
    }
    const [, schema, name] = match;
    const qualify = (suffix: string) => (schema ? `"${schema}"."${name}${suffix}"` : `"${name}${suffix}"`);
    this.qualify = qualify;
    this.table = table;
    this.sessions = qualify('');
    this.locks = qualify('_locks');
    this.version = qualify('_schema');
    this.accessIndex = `"${name}_last_access"`;
    this.ownLifetimeIndex = `"${name}_own_lifetime"`;
    this.idleIndex = `"${name}_idle_slot"`;
    this.expiryIndex = `"${name}_expiry_slot"`;
    this.lockAndLoad = qualify('_lock_and_load');
    this.load = qualify('_load');
    this.releaseChannelPrefix = `${table}_released`;
    this.releaseChannel = `${table}${CHANNEL_SUFFIX}`;
    this.migrationLockKey = `sessionserver schema ${table}`;
  }

  /** The layout version a release channel names: 2 for the unversioned channel of versions 1 and 2; undefined when it is not ours. */
  layoutOfChannel(channel: string): number | undefined {
    if (channel === this.releaseChannelPrefix) return 2;
    const match = /^_v([0-9]+)$/.exec(channel.slice(this.releaseChannelPrefix.length));
    return channel.startsWith(this.releaseChannelPrefix) && match ? Number(match[1]) : undefined;
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

  // 3 (issue 15): the session cycle in two round trips and the sweep off the hot path.
  // - `access_slot`, the last access rounded down to the minute, is what the sweep's indexes
  //   hold; `last_access` is no longer indexed. An access rewrites the slot at most once a
  //   minute, so the other updates of a row are HOT (no index entries), helped by free room on
  //   each page (fillfactor).
  // - lock_and_load takes the writer lock and reads the session in one round trip; load reads
  //   and records the access only when the recorded one is older than ACCESS_PRECISION_MS.
  // - the release channel names the layout version (see PostgresNames.releaseChannel).
  (n) => [
    `ALTER TABLE ${n.sessions} ADD COLUMN access_slot bigint`,
    `UPDATE ${n.sessions} SET access_slot = ${slotOf('last_access')}`,
    `ALTER TABLE ${n.sessions} ALTER COLUMN access_slot SET NOT NULL, ALTER COLUMN access_slot SET DEFAULT ${slotOf('now()')}`,
    `ALTER TABLE ${n.sessions} SET (fillfactor = 80)`,
    `DROP INDEX ${n.qualify('_last_access')}`,
    `DROP INDEX ${n.qualify('_own_lifetime')}`,
    `CREATE INDEX ${n.idleIndex} ON ${n.sessions} (access_slot) WHERE lifetime IS NULL`,
    `CREATE INDEX ${n.expiryIndex} ON ${n.sessions} ((access_slot + lifetime)) WHERE lifetime IS NOT NULL`,
    `CREATE FUNCTION ${n.load}(p_id text) RETURNS text LANGUAGE plpgsql AS $fn$
     DECLARE
       found_data text;
       seen timestamptz;
       own integer;
     BEGIN
       SELECT s.data, s.last_access, s.lifetime INTO found_data, seen, own FROM ${n.sessions} s
        WHERE s.id = p_id AND (s.lifetime IS NULL OR s.last_access > now() - s.lifetime * interval '1 second');
       IF NOT FOUND THEN RETURN NULL; END IF;
       -- A read writes nothing unless the recorded access is stale: within a tenth of a short
       -- own lifetime, or ${ACCESS_PRECISION_MS} ms, it is as good as now.
       IF seen < now() - least(interval '${ACCESS_PRECISION_MS} milliseconds', own * interval '100 milliseconds') THEN
         -- An access time is not worth an fsync (a crash may lose the last moments of them, never values).
         PERFORM set_config('synchronous_commit', 'off', true);
         UPDATE ${n.sessions} SET last_access = now(), access_slot = ${slotOf('now()')} WHERE id = p_id;
       END IF;
       RETURN found_data;
     END
     $fn$`,
    `CREATE FUNCTION ${n.lockAndLoad}(p_id text, p_token text, p_lease_ms integer, OUT taken boolean, OUT retry_ms bigint, OUT data text)
     LANGUAGE plpgsql AS $fn$
     BEGIN
       -- Take the lock row if it is free or its lease ran out. (A holder's fenced save locks
       -- the row FOR SHARE: a takeover waits for that save to commit.)
       INSERT INTO ${n.locks} AS l (id, owner, expires_at) VALUES (p_id, p_token, clock_timestamp() + p_lease_ms * interval '1 millisecond')
       ON CONFLICT (id) DO UPDATE SET owner = excluded.owner, expires_at = excluded.expires_at WHERE l.expires_at <= clock_timestamp();
       IF FOUND THEN
         taken := true;
         -- A statement of its own, so a snapshot taken after the lock: it sees every save of
         -- the previous holder (committed before its release). One CTE could not: its parts
         -- share the snapshot taken before the lock was won.
         data := ${n.load}(p_id);
         RETURN;
       END IF;
       -- Held: mark it contended, so its release notifies, and say how long its lease has left.
       -- No row: released (or inserted by a transaction not yet visible) just now; retry_ms stays null.
       taken := false;
       UPDATE ${n.locks} SET contended = true WHERE id = p_id
       RETURNING ceil(extract(epoch FROM expires_at - clock_timestamp()) * 1000)::bigint INTO retry_ms;
     END
     $fn$`,
  ],
];

/** The layout (tables, functions, lock protocol) this sessionserver reads and writes: the last migration. */
export const SCHEMA_VERSION = MIGRATIONS.length;
const CHANNEL_SUFFIX = `_released_v${SCHEMA_VERSION}`;

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
    await checkLayout(query, names);
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

type Query = <R extends pg.QueryResultRow>(text: string, values?: unknown[]) => Promise<pg.QueryResult<R>>;

/**
 * Refuses to run beside an instance of another layout version on the same tables: their lock
 * protocols differ (functions, fencing, release channel), and mixing them would break mutual
 * exclusion without a word. Every instance LISTENs on a channel naming its version (versions 1
 * and 2 on `<table>_released`) before it migrates, under the migration lock, so of two
 * instances starting at once the second sees the first. Another instance's statement is
 * visible to the same database role (or one with pg_read_all_stats).
 */
async function checkLayout(query: Query, names: PostgresNames): Promise<void> {
  const { rows } = await query<{ query: string }>(
    `SELECT query FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid() AND query LIKE 'LISTEN %'`,
  );
  for (const { query: statement } of rows) {
    const channel = /^LISTEN "(.*)"$/.exec(statement)?.[1];
    const layout = channel === undefined ? undefined : names.layoutOfChannel(channel);
    if (layout === undefined || layout === SCHEMA_VERSION) continue;
    throw new ConfigError(
      `another sessionserver instance is running on the PostgreSQL session tables ${names.table} with layout version ${layout}` +
        `${layout === 2 ? ' (or older)' : ''}; this one uses version ${SCHEMA_VERSION}. Their writer locks do not exclude each other: ` +
        'stop every instance of the other version before starting this one (a rolling upgrade cannot cross a layout version)',
    );
  }
}
