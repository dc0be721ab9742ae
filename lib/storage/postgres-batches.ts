import type { StorageGuard } from './guard.js';

/**
 * Statements of one kind (opens, closes) in flight at once before the next wait and go
 * together. Measured on the session cycle at 50 clients (2 cores): 1, 2, 3 and 4 were alike
 * within the noise, all far ahead of no batching; 2 lets one batch be sent while another
 * waits for its commit, and leaves most of a pool of 10 to reads.
 */
export const STATEMENTS_IN_FLIGHT = 2;
/** At most this many items in one statement. */
export const MAX_BATCH = 64;

/** An item waiting for its statement, and how to answer it. */
interface Pending<I, R> {
  item: I;
  /** Its caller was answered already (the storage guard's timeout): not worth sending any more. */
  abandoned: boolean;
  resolve(result: R): void;
  reject(error: unknown): void;
}

export interface BatchesOptions<I, R> {
  /** Sends one statement for the items; resolves with one result per item, in their order. */
  send(items: I[]): Promise<R[]>;
  /** Statements in flight at once before the next items wait and go together. */
  maxInFlight: number;
  /** At most this many items in one statement. */
  maxItems: number;
  /** With the size of an item, at most about this much in one statement (one item always goes). */
  maxSize?: { of(item: I): number; limit: number };
  /** Bounds every item in time, its wait for a statement included. */
  guard: StorageGuard;
}

/**
 * Lock order. A batch (of opens or of closes) is one transaction holding several rows until its
 * commit, so the statements that may hold some rows while waiting for others all take them in one
 * order, and no cycle of waits can form:
 * - lock rows in id order: closes (FOR UPDATE under ORDER BY, PostgresCloses), opens
 *   (lock_and_load called row by row over ids sorted by the database, PostgresLocks), and lease
 *   renewals (which may still carry a lock that a batch of closes is releasing);
 * - a session row only while holding its lock row (opens read it right after taking the lock,
 *   closes write it after all their lock rows), or alone (reads, saves, destroy).
 * A holder of a session row without its lock row waits for nothing else, and the gc sweep skips
 * rows in use (SKIP LOCKED), so it never waits. One collation orders every `id` (the column's).
 *
 * Adaptive batching of one kind of statement: an item goes out at once, alone, while fewer
 * than `maxInFlight` statements are in flight, so a quiet server adds no latency; the items
 * that arrive meanwhile wait here and go together, in ONE statement, when one finishes: one
 * round trip (and one transaction, so one commit) for all of them instead of each waiting for
 * a pooled connection of its own. Each item gets its own result; a statement that fails fails
 * each of its items with the same error (one statement, one transaction: none took effect).
 */
export class StatementBatches<I, R> {
  /** Statements sent, and the items they carried (items / statements: the mean batch). */
  statements = 0;
  items = 0;
  private inFlight = 0;
  private waiting: Array<Pending<I, R>> = [];

  constructor(private readonly options: BatchesOptions<I, R>) {}

  get maxInFlight(): number {
    return this.options.maxInFlight;
  }

  /** How many items wait for a statement now. */
  get queued(): number {
    return this.waiting.length;
  }

  /** Sends the item alone or with others; resolves with its result, within the guard's timeout. */
  run(item: I): Promise<R> {
    const pending: Pending<I, R> = { item, abandoned: false, resolve: noop, reject: noop };
    const answer = this.options.guard.run(
      () =>
        new Promise<R>((resolve, reject) => {
          pending.resolve = resolve;
          pending.reject = reject;
          if (this.inFlight < this.options.maxInFlight) this.send([pending]);
          else this.waiting.push(pending);
        }),
    );
    // Timed out while it waited here: its caller was told, so it is not sent after all.
    answer.catch(() => {
      pending.abandoned = true;
    });
    return answer;
  }

  private send(batch: Array<Pending<I, R>>): void {
    this.inFlight++;
    this.statements++;
    this.items += batch.length;
    let sent: Promise<R[]>;
    try {
      sent = this.options.send(batch.map((pending) => pending.item));
    } catch (error) {
      sent = Promise.reject(error);
    }
    sent.then(
      (results) => {
        for (let i = 0; i < batch.length; i++) batch[i]!.resolve(results[i]!);
        this.finished();
      },
      (error: unknown) => {
        for (const pending of batch) pending.reject(error);
        this.finished();
      },
    );
  }

  private finished(): void {
    this.inFlight--;
    while (this.inFlight < this.options.maxInFlight && this.waiting.length > 0) {
      const batch = this.nextBatch();
      if (batch.length > 0) this.send(batch);
    }
  }

  /** The oldest waiting items still wanted, up to maxItems and about maxSize. */
  private nextBatch(): Array<Pending<I, R>> {
    const { maxItems, maxSize } = this.options;
    const batch: Array<Pending<I, R>> = [];
    let size = 0;
    let taken = 0;
    for (const pending of this.waiting) {
      if (batch.length === maxItems) break;
      const itemSize = maxSize ? maxSize.of(pending.item) : 0;
      if (maxSize && batch.length > 0 && size + itemSize > maxSize.limit) break;
      taken++;
      if (pending.abandoned) continue;
      batch.push(pending);
      size += itemSize;
    }
    this.waiting = taken === this.waiting.length ? [] : this.waiting.slice(taken);
    return batch;
  }
}

const noop = () => {};
