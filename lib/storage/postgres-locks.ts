import { createHash } from 'node:crypto';
import pg from 'pg';
import { StoreError } from '../core/errors.js';
import type { StorageGuard } from './guard.js';
import { LeaseLockManager, type LockAttempt } from './lease-locks.js';
import { MAX_BATCH, STATEMENTS_IN_FLIGHT, StatementBatches } from './postgres-batches.js';
import type { PostgresNames } from './postgres-schema.js';

const RECONNECT_MS = 1000;

interface Attempt {
  id: string;
  token: string;
}
interface AttemptRow {
  taken: boolean;
  retry_ms: string | null;
  data: string | null;
}

/**
 * Runs a prepared statement (parsed and planned once per connection) on a pooled connection.
 * Built as a Query from the text, then named: pg copies a config object's property descriptors
 * on every query, which showed in the session cycle's profile; a string is taken as it is.
 */
export function queryPrepared<R extends pg.QueryResultRow>(pool: pg.Pool, name: string, text: string, values: unknown[]): Promise<pg.QueryResult<R>> {
  const query = new pg.Query<R>(text, values);
  (query as { name?: string }).name = name;
  // pg-pool answers every query, a Query object included, with a promise of its result.
  return pool.query(query) as unknown as Promise<pg.QueryResult<R>>;
}

/**
 * What a release announces instead of the session id: any role that can connect to the
 * database may LISTEN on any channel, and a session id is a credential.
 */
export function releaseTag(sessionId: string): string {
  return createHash('sha256').update(sessionId).digest('base64url').slice(0, 22);
}

/**
 * Writer locks as lease rows in PostgreSQL: a row (id, owner token, expires_at) per held
 * lock, taken by an upsert that only overwrites an expired row, in the same round trip that
 * reads the session (the server function lock_and_load; the store's load takes what it read);
 * attempts that queue up behind others in flight go together in one statement (opens).
 * A waiter marks the row `contended`; the release (compare-and-delete by token) sends NOTIFY
 * only then, so the common uncontended release costs one DELETE of an unlogged row and no
 * notification, and nobody waits for it (see unlock). Every instance LISTENs
 * on one channel on a connection of its own, outside the pool; the payload is a hash of the
 * session id (releaseTag), matched against the sessions this instance has writers waiting for.
 */
export class PostgresLocks extends LeaseLockManager {
  private listener: pg.Client | null = null;
  private listening: Promise<void> | null = null;
  private reconnectTimer: NodeJS.Timeout | null = null;
  private stopped = false;
  /** releaseTag → session id, for the sessions this instance's writers wait for. */
  private readonly watched = new Map<string, string>();
  /** What lock_and_load read with each lock this instance took, until the load that follows. */
  private readonly loaded = new Map<string, { token: string; data: string | null }>();
  /** Releases on their way, per session. */
  private readonly unlocking = new Map<string, Promise<void>>();
  /** Lock attempts (`open … rw`), sent alone or together. */
  readonly opens: StatementBatches<Attempt, AttemptRow>;

  constructor(
    private readonly pool: pg.Pool,
    private readonly connection: pg.ClientConfig,
    private readonly names: PostgresNames,
    leaseMs: number | undefined,
    /** The store's: lock round trips are storage operations too, bounded in time. */
    private readonly guard: StorageGuard,
  ) {
    super(leaseMs);
    this.opens = new StatementBatches<Attempt, AttemptRow>({
      send: (attempts) => this.lockAndLoad(attempts),
      maxInFlight: STATEMENTS_IN_FLIGHT,
      maxItems: MAX_BATCH,
      guard,
    });
  }

  /** Opens the LISTEN connection; resolves once release announcements flow. */
  async start(): Promise<void> {
    if (!this.listening) this.listening = this.listen();
    await this.listening;
  }

  private async listen(): Promise<void> {
    const client = new pg.Client(this.connection);
    client.on('notification', (message) => {
      const sessionId = message.channel === this.names.releaseChannel ? this.watched.get(message.payload ?? '') : undefined;
      if (sessionId !== undefined) this.released(sessionId);
    });
    // The connection broke: waiters fall back to their lease re-checks until it is back.
    client.on('error', () => this.lost(client));
    client.on('end', () => this.lost(client));
    try {
      await client.connect();
      await client.query(`LISTEN "${this.names.releaseChannel}"`);
    } catch (error) {
      client.end().catch(() => {});
      throw new StoreError(`cannot listen for lock releases: ${(error as Error).message}`);
    }
    if (this.stopped) {
      await client.end().catch(() => {});
      return;
    }
    this.listener = client;
  }

  private lost(client: pg.Client): void {
    if (this.listener !== client || this.stopped) return;
    this.listener = null;
    client.end().catch(() => {});
    this.listening = Promise.reject(new StoreError('not listening for lock releases'));
    this.listening.catch(() => {});
    this.reconnectLater();
  }

  private reconnectLater(): void {
    if (this.reconnectTimer || this.stopped) return;
    this.reconnectTimer = setTimeout(() => {
      this.reconnectTimer = null;
      this.listening = this.listen();
      this.listening.then(
        // Releases announced while we were away are lost: every waiter looks again.
        () => this.wakeAll(),
        () => this.reconnectLater(),
      );
    }, RECONNECT_MS);
    this.reconnectTimer.unref();
  }

  /** One round trip on the pool, bounded like every storage operation; `name` makes it a prepared statement. */
  private query<R extends pg.QueryResultRow>(name: string, text: string, values: unknown[]): Promise<pg.QueryResult<R>> {
    return this.guard.run(() => queryPrepared<R>(this.pool, name, text, values));
  }

  protected async tryLock(sessionId: string, token: string): Promise<LockAttempt> {
    // A release of this instance still on its way goes first: the lock may be ours to take again.
    await this.unlocking.get(sessionId);
    // One round trip takes the lock and reads the session (or marks the lock contended and
    // says how long the holder's lease has left): see lock_and_load in postgres-schema.ts.
    const row = await this.opens.run({ id: sessionId, token });
    if (row.taken) {
      this.loaded.set(sessionId, { token, data: row.data });
      return { acquired: true };
    }
    // No row to mark: it was released (or inserted by a transaction we could not see yet) just now.
    return { acquired: false, retryInMs: row.retry_ms === null ? 0 : Math.max(0, Number(row.retry_ms)) };
  }

  /**
   * lock_and_load for attempts sent together (see StatementBatches): one statement calls it for
   * each, over the ids sorted by the database (lock order: postgres-batches.ts). Each call's
   * statements take snapshots of their own, so each reads its session after its lock as it
   * would alone; the locks taken become visible together at the commit, which waits for no
   * flush (lock rows are unlogged, access times are written without one). One alone takes the
   * plain call, cheaper for PostgreSQL to run.
   */
  private async lockAndLoad(attempts: Attempt[]): Promise<AttemptRow[]> {
    if (attempts.length === 1) {
      const { id, token } = attempts[0]!;
      const { rows } = await queryPrepared<AttemptRow>(
        this.pool,
        'sessionserver_lock_and_load',
        `SELECT taken, retry_ms, data FROM ${this.names.lockAndLoad}($1, $2, $3)`,
        [id, token, this.leaseMs],
      );
      return rows;
    }
    const ids: string[] = [];
    const tokens: string[] = [];
    for (const attempt of attempts) {
      ids.push(attempt.id);
      tokens.push(attempt.token);
    }
    const { rows } = await queryPrepared<AttemptRow & { n: string }>(
      this.pool,
      'sessionserver_lock_and_load_batch',
      `SELECT o.n, r.taken, r.retry_ms, r.data
       FROM (SELECT * FROM unnest($1::text[], $2::text[]) WITH ORDINALITY AS o(id, token, n) ORDER BY o.id) o
       CROSS JOIN LATERAL ${this.names.lockAndLoad}(o.id, o.token, $3) r`,
      [ids, tokens, this.leaseMs],
    );
    const results = new Array<AttemptRow>(attempts.length);
    for (const row of rows) results[Number(row.n) - 1] = row;
    return results;
  }

  /**
   * The session as read when this instance took its lock, once, while it still holds that
   * lock: the load that follows an acquire costs no round trip. Null data: no such session.
   */
  takeLoaded(sessionId: string): { data: string | null } | undefined {
    const loaded = this.loaded.get(sessionId);
    if (!loaded) return undefined;
    this.loaded.delete(sessionId);
    return loaded.token === this.tokenOf(sessionId) ? loaded : undefined;
  }

  /** The session was written or deleted under the lock: what was read with the lock is stale. */
  forgetLoaded(sessionId: string): void {
    this.loaded.delete(sessionId);
  }

  /**
   * Deletes the lock row (compare-and-delete by token; NOTIFY only when a waiter marked it)
   * without making the caller wait: the owner's changes are committed before the release
   * starts, so the client's `ok` need not wait for a write that costs no fsync. This instance's
   * next attempt on the session waits for it (tryLock), other instances are woken by its
   * NOTIFY, and one that fails leaves the row to its lease (a takeover then waits out one
   * lease; the next attempt of this instance tries the delete again first).
   */
  protected unlock(sessionId: string, token: string): Promise<void> {
    const loaded = this.loaded.get(sessionId);
    if (loaded?.token === token) this.loaded.delete(sessionId);
    const previous = this.unlocking.get(sessionId);
    const release = () =>
      this.query(
        'sessionserver_unlock',
        `WITH gone AS (DELETE FROM ${this.names.locks} WHERE id = $1 AND owner = $2 RETURNING contended)
         SELECT pg_notify($3, $4) FROM gone WHERE contended`,
        [sessionId, token, this.names.releaseChannel, releaseTag(sessionId)],
      ).then(
        () => {},
        () => {},
      );
    const done: Promise<void> = previous ? previous.then(release) : release();
    this.unlocking.set(sessionId, done);
    void done.then(() => {
      if (this.unlocking.get(sessionId) === done) this.unlocking.delete(sessionId);
    });
    return Promise.resolve();
  }

  /** Resolves once every release sent so far has had its answer. */
  async settled(): Promise<void> {
    while (this.unlocking.size > 0) await Promise.all(this.unlocking.values());
  }

  protected async renew(locks: ReadonlyMap<string, string>): Promise<string[]> {
    const ids = [...locks.keys()];
    // The rows are locked in id order (postgres-batches.ts): a renewal may still carry locks that
    // a batch of closes is releasing, and the same order means no deadlock.
    const { rows } = await this.query<{ id: string }>(
      'sessionserver_renew',
      `WITH mine AS (
         SELECT l.id FROM ${this.names.locks} l JOIN unnest($1::text[], $2::text[]) AS held(id, owner) ON l.id = held.id AND l.owner = held.owner
         ORDER BY l.id FOR UPDATE OF l
       )
       UPDATE ${this.names.locks} AS l SET expires_at = clock_timestamp() + $3 * interval '1 millisecond'
       FROM mine WHERE l.id = mine.id
       RETURNING l.id`,
      [ids, [...locks.values()], this.leaseMs],
    );
    const renewed = new Set(rows.map((row) => row.id));
    return ids.filter((id) => !renewed.has(id));
  }

  protected async watch(sessionId: string): Promise<void> {
    // One channel for all sessions, listened to since start(): nothing to subscribe per session.
    if (!this.listening) throw new StoreError('PostgresLocks.start() was not called');
    this.watched.set(releaseTag(sessionId), sessionId);
    await this.listening;
  }

  protected async unwatch(sessionId: string): Promise<void> {
    this.watched.delete(releaseTag(sessionId));
  }

  override async close(): Promise<void> {
    this.stopped = true;
    if (this.reconnectTimer) clearTimeout(this.reconnectTimer);
    this.reconnectTimer = null;
    await super.close();
    await this.settled();
    this.loaded.clear();
    const listener = this.listener;
    this.listener = null;
    await listener?.end().catch(() => {});
  }
}
