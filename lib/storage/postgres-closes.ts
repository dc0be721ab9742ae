import type pg from 'pg';
import type { StorageGuard } from './guard.js';
import { MAX_BATCH, STATEMENTS_IN_FLIGHT, StatementBatches } from './postgres-batches.js';
import { queryPrepared, releaseTag } from './postgres-locks.js';
import { slotOf, type PostgresNames } from './postgres-schema.js';

// At most this much session data (characters of JSON) goes in one statement, besides its first close.
const MAX_BATCH_CHARS = 1024 * 1024;

interface Close {
  id: string;
  /** The session as the JSON text the row holds. */
  data: string;
  /** The owner token of its writer lock: the fence. */
  token: string;
}

/**
 * Group commit for `close` (the fenced write plus the release of the writer lock). A close
 * goes out at once, alone, while fewer than `maxInFlight` close statements are in flight, so a
 * quiet server adds no latency; the closes that arrive meanwhile wait here and go together in
 * ONE statement (unnest of arrays) when one finishes: one round trip and one durable commit
 * (one WAL flush) for all of them, instead of each waiting for a pooled connection and a flush
 * of its own. Each close still gets its own answer: written (its lock was still its own), not
 * written (LOCK_LOST), or the batch's error when the statement failed. Nothing is answered
 * before the statement's commit.
 *
 * The statement, for each row: deletes the lock row by (id, owner token), upserts the session
 * only if that delete found the row, and notifies (the release tag) only when a waiter marked
 * the row contended; it returns the tokens whose session was written.
 *
 * Fencing and other instances. The lock rows are locked first, FOR UPDATE, in id order, and
 * held until the commit: a takeover of an expired lease (lock_and_load's upsert, on any instance)
 * waits for that commit, then finds the row gone, inserts its own and reads the session in a
 * later snapshot, so it reads this write. A lease already taken over (committed, or committing
 * while we wait for its row) carries another token: the join on the token fails when the row is
 * re-read, so that session is neither released nor written, and its close is told LOCK_LOST.
 * A stale token never waits for a row it does not own (its snapshot's row has another owner).
 *
 * Lock order (no deadlocks): the lock rows FOR UPDATE under ORDER BY (locked in sorted order),
 * then the session rows by the upsert's ordered SELECT; see postgres-batches.ts.
 */
export class PostgresCloses {
  readonly batches: StatementBatches<Close, boolean>;
  private readonly text: string;
  private readonly single: string;

  constructor(
    private readonly pool: pg.Pool,
    private readonly names: PostgresNames,
    /** Every close is bounded by the store's guard, its wait for a statement included. */
    guard: StorageGuard,
    maxInFlight = STATEMENTS_IN_FLIGHT,
  ) {
    const { sessions, locks } = names;
    this.text = `WITH closing AS (SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[]) AS c(id, data, owner, tag)),
      mine AS (
        SELECT l.id, l.owner, l.contended FROM ${locks} l JOIN closing c ON l.id = c.id AND l.owner = c.owner
        ORDER BY l.id FOR UPDATE OF l
      ),
      gone AS (DELETE FROM ${locks} l USING mine m WHERE l.id = m.id RETURNING l.id, l.owner, l.contended),
      saved AS (
        INSERT INTO ${sessions} (id, data, last_access, access_slot)
        SELECT c.id, c.data, now(), ${slotOf('now()')} FROM closing c JOIN gone g ON g.owner = c.owner ORDER BY c.id
        ON CONFLICT (id) DO UPDATE SET data = excluded.data, last_access = excluded.last_access, access_slot = excluded.access_slot
        RETURNING id
      ),
      notified AS (SELECT pg_notify($5, c.tag) FROM closing c JOIN gone g ON g.owner = c.owner WHERE g.contended)
      SELECT array(SELECT g.owner FROM gone g JOIN saved s ON s.id = g.id) AS saved, (SELECT count(*) FROM notified) AS notified`;
    this.single = `WITH gone AS (DELETE FROM ${locks} WHERE id = $1 AND owner = $3 RETURNING contended),
      saved AS (
        INSERT INTO ${sessions} (id, data, last_access, access_slot)
        SELECT $1, $2, now(), ${slotOf('now()')} FROM gone
        ON CONFLICT (id) DO UPDATE SET data = excluded.data, last_access = excluded.last_access, access_slot = excluded.access_slot
        RETURNING 1
      ),
      notified AS (SELECT pg_notify($4, $5) FROM gone WHERE contended)
      SELECT (SELECT count(*) FROM saved)::integer AS saved, (SELECT count(*) FROM notified) AS notified`;
    this.batches = new StatementBatches<Close, boolean>({
      send: (closes) => this.send(closes),
      maxInFlight,
      maxItems: MAX_BATCH,
      maxSize: { of: (close) => close.data.length, limit: MAX_BATCH_CHARS },
      guard,
    });
  }

  /**
   * Writes `data` (JSON text) and releases the lock if `token` still owns it, in a statement of
   * its own or with other closes; resolves true when written, false when the lock was lost.
   */
  saveAndRelease(id: string, data: string, token: string): Promise<boolean> {
    return this.batches.run({ id, data, token });
  }

  private async send(closes: Close[]): Promise<boolean[]> {
    if (closes.length === 1) {
      const { id, data, token } = closes[0]!;
      const { rows } = await queryPrepared<{ saved: number }>(this.pool, 'sessionserver_save_and_release', this.single, [
        id,
        data,
        token,
        this.names.releaseChannel,
        releaseTag(id),
      ]);
      return [rows[0]!.saved === 1];
    }
    const ids: string[] = [];
    const data: string[] = [];
    const tokens: string[] = [];
    const tags: string[] = [];
    for (const close of closes) {
      ids.push(close.id);
      data.push(close.data);
      tokens.push(close.token);
      tags.push(releaseTag(close.id));
    }
    const { rows } = await queryPrepared<{ saved: string[] }>(this.pool, 'sessionserver_close', this.text, [ids, data, tokens, tags, this.names.releaseChannel]);
    const saved = new Set(rows[0]!.saved);
    return closes.map((close) => saved.has(close.token));
  }
}
