import { CommandError, isCommandError } from '../core/errors.js';

/** What the stores log through: a pino logger fits. They log only when an outage starts and ends. */
export interface StorageLogger {
  warn(fields: object, message: string): void;
  info(fields: object, message: string): void;
}

/**
 * The storage did not answer in time or could not be reached. The client reads
 * `err Storage unavailable`; `reason` (the driver's message) is for logs, never for clients.
 */
export class StorageUnavailableError extends CommandError {
  override readonly name = 'StorageUnavailableError';
  constructor(readonly reason: string) {
    super('Storage unavailable', 'E_STORAGE_UNAVAILABLE');
  }
}

/** True for a StorageUnavailableError from any copy of this package (see isCommandError). */
export function isStorageUnavailable(error: unknown): error is StorageUnavailableError {
  return isCommandError(error) && error.code === 'E_STORAGE_UNAVAILABLE';
}

/** Errors of our own code, not of the storage: they keep their stack for the log. */
export function isProgrammingError(error: unknown): boolean {
  return error instanceof TypeError || error instanceof RangeError || error instanceof ReferenceError || error instanceof SyntaxError;
}

class StorageTimeout extends Error {
  constructor(ms: number) {
    super(`no answer within ${ms} ms`);
  }
}

export interface StorageGuardOptions {
  /** The store's name, for the log lines. */
  storage: string;
  /** Milliseconds one operation may take; 0 waits forever. */
  timeoutMs: number;
  log?: StorageLogger;
  /**
   * True for the driver's errors that mean the storage cannot serve now (unreachable, timed
   * out, out of disk, read-only replica), as opposed to a bug or a refused request.
   */
  isUnavailable(error: unknown): boolean;
}

/** An operation in flight under StorageGuard.run: when it times out, and how to fail it. */
interface Deadline {
  at: number;
  settled: boolean;
  fail(error: unknown): void;
}

interface Outage {
  since: number;
  failures: number;
  lastError: string;
}

/**
 * Bounds a store's operations in time and turns "the storage cannot serve" into one
 * clear StorageUnavailableError, so the client reads `err Storage unavailable` at once and
 * the server goes on serving what needs no storage. It also watches the outage: one
 * warning when the first operation fails, one info line when one succeeds again; the
 * failures between are not logged (no stack per failed request).
 *
 * A timed-out operation is not cancelled here (the drivers' own timeouts end it): a write
 * may still land after its client was told `err`, as with any storage client timeout.
 */
export class StorageGuard {
  /** Operations answered `Storage unavailable`, since start. */
  failures = 0;
  readonly timeoutMs: number;
  private outage: Outage | null = null;

  constructor(private readonly options: StorageGuardOptions) {
    if (!Number.isSafeInteger(options.timeoutMs) || options.timeoutMs < 0) throw new TypeError('storageTimeout must be a whole number of milliseconds');
    this.timeoutMs = options.timeoutMs;
  }

  /** True between the first failure of an outage and the next success. */
  get unavailable(): boolean {
    return this.outage !== null;
  }

  /** Runs one operation (one or a few round trips) within the timeout. */
  run<T>(operation: () => Promise<T>): Promise<T> {
    let pending: Promise<T>;
    try {
      pending = operation();
    } catch (error) {
      return Promise.reject(this.failed(error));
    }
    return new Promise<T>((resolve, reject) => {
      const entry: Deadline = { at: 0, settled: false, fail: reject };
      if (this.timeoutMs > 0) this.watch(entry);
      pending.then(
        (value) => {
          if (entry.settled) return;
          this.settle(entry);
          if (this.outage) this.recovered();
          resolve(value);
        },
        (error: unknown) => {
          if (entry.settled) return;
          this.settle(entry);
          reject(this.failed(error));
        },
      );
    });
  }

  // One timer for all operations in flight, not one each: they all get the same timeout, so
  // they time out in the order they started, and the oldest one's deadline is the next.
  private readonly deadlines = new Set<Deadline>();
  private deadlineTimer: NodeJS.Timeout | null = null;

  private watch(entry: Deadline): void {
    entry.at = Date.now() + this.timeoutMs;
    this.deadlines.add(entry);
    if (!this.deadlineTimer) this.armDeadlines(this.timeoutMs);
  }

  private settle(entry: Deadline): void {
    entry.settled = true;
    this.deadlines.delete(entry);
  }

  private armDeadlines(delayMs: number): void {
    this.deadlineTimer = setTimeout(this.expire, delayMs);
    // The operations' own sockets and files keep the process alive, not their deadline.
    this.deadlineTimer.unref();
  }

  private readonly expire = (): void => {
    this.deadlineTimer = null;
    const now = Date.now();
    for (const entry of this.deadlines) {
      if (entry.at > now) {
        this.armDeadlines(entry.at - now);
        return;
      }
      this.settle(entry);
      entry.fail(this.failed(new StorageTimeout(this.timeoutMs)));
    }
  };

  /** The error to hand on: StorageUnavailableError for an outage, anything else unchanged. */
  private failed(error: unknown): unknown {
    if (isStorageUnavailable(error)) {
      // From an inner guarded call (a lock operation inside a store operation): counted there.
      return error;
    }
    if (isCommandError(error)) return error;
    if (!(error instanceof StorageTimeout) && (isProgrammingError(error) || !this.options.isUnavailable(error))) return error;
    const reason = error instanceof Error ? error.message : String(error);
    this.failures++;
    if (this.outage) {
      this.outage.failures++;
      this.outage.lastError = reason;
    } else {
      this.outage = { since: Date.now(), failures: 1, lastError: reason };
      this.options.log?.warn({ storage: this.options.storage, error: reason }, 'storage unavailable');
    }
    return new StorageUnavailableError(reason);
  }

  private recovered(): void {
    const outage = this.outage!;
    this.outage = null;
    this.options.log?.info(
      { storage: this.options.storage, downMs: Date.now() - outage.since, failures: outage.failures, lastError: outage.lastError },
      'storage available again',
    );
  }
}

/** Node's system errors (ECONNREFUSED, ENOSPC, EIO, …): the machine or the network, not our code. */
export function isSystemError(error: unknown): boolean {
  const code = (error as NodeJS.ErrnoException | null)?.code;
  return typeof code === 'string' && /^E[A-Z0-9_]+$/.test(code);
}
