import { LRUCache } from 'lru-cache';

export interface FailureThrottleOptions {
  /** Failures from one address before it is refused until its failures expire. */
  maxFailures: number;
  /** Delay of the first failure's reply, doubled for each further one (at most MAX_DELAY_MS). */
  failureDelayMs: number;
  /** An address's failures are forgotten this long after its latest one. */
  failureWindowMs: number;
  /** Addresses remembered at most; the least recently failing are forgotten first. */
  maxAddresses: number;
}

export const MAX_DELAY_MS = 5000;

/**
 * Failed logins per client address, across connections: opening a new connection per guess
 * starts nothing afresh. Bounded (LRU) and expiring, so a flood of addresses cannot grow it.
 */
export class FailureThrottle {
  private options: FailureThrottleOptions;
  private failures: LRUCache<string, number>;

  constructor(options: FailureThrottleOptions) {
    this.options = options;
    this.failures = makeMap(options);
  }

  /** Takes new limits (plugin reload), keeping the failures counted so far. */
  configure(options: FailureThrottleOptions): void {
    const resized = options.maxAddresses !== this.options.maxAddresses || options.failureWindowMs !== this.options.failureWindowMs;
    this.options = options;
    if (!resized) return;
    const kept = this.failures.dump();
    this.failures = makeMap(options);
    this.failures.load(kept);
  }

  /** Failures on record for `address` (0 once they expired). */
  count(address: string): number {
    return this.failures.get(address) ?? 0;
  }

  /** True when `address` has used up its failures: refuse without checking the credential. */
  blocked(address: string): boolean {
    return this.count(address) >= this.options.maxFailures;
  }

  /** Counts one failure (restarting the window) and returns the new count. */
  record(address: string): number {
    const count = this.count(address) + 1;
    this.failures.set(address, count);
    return count;
  }

  /** Whether the failure that made `count` used up the address's allowance. */
  exhausted(count: number): boolean {
    return count >= this.options.maxFailures;
  }

  /**
   * How long an attempt waits before its reply, fixed before its verdict is known: with
   * `before` failures on record, a right and a wrong credential both wait this long, so
   * hanging up early tells nothing. Only an address without failures gets a success at once.
   */
  delayFor(before: number, succeeded: boolean): number {
    if (before === 0 && succeeded) return 0;
    return Math.min(this.options.failureDelayMs * 2 ** before, MAX_DELAY_MS);
  }
}

function makeMap(options: FailureThrottleOptions): LRUCache<string, number> {
  return new LRUCache<string, number>({ max: options.maxAddresses, ttl: options.failureWindowMs, updateAgeOnGet: false });
}
