import pLimit, { type LimitFunction } from 'p-limit';

export interface VerificationQueueOptions {
  /** Password checks running at once. scrypt runs on libuv's thread pool (4 threads by default), which file I/O and DNS share. */
  maxConcurrent: number;
  /** Password checks waiting for a turn; beyond that an attempt is refused at once. */
  maxQueued: number;
}

/**
 * Bounds the password checks in flight, so a burst of wrong passwords cannot take every
 * thread of the pool that other clients' file-system requests wait on.
 */
export class VerificationQueue {
  private readonly limit: LimitFunction;
  private options: VerificationQueueOptions;
  /** Checks accepted and not finished, running or waiting: counted here, synchronously, so a burst within one tick cannot overshoot. */
  private accepted = 0;

  constructor(options: VerificationQueueOptions) {
    this.options = options;
    this.limit = pLimit(options.maxConcurrent);
  }

  configure(options: VerificationQueueOptions): void {
    this.options = options;
    this.limit.concurrency = options.maxConcurrent;
  }

  /** Checks accepted and not finished yet. */
  get size(): number {
    return this.accepted;
  }

  /** False when every slot is busy and the queue is full: refuse rather than wait. */
  hasRoom(): boolean {
    return this.accepted < this.options.maxConcurrent + this.options.maxQueued;
  }

  /** Runs `check` when a slot is free; the caller asked `hasRoom()` first. */
  async run<T>(check: () => Promise<T>): Promise<T> {
    this.accepted++;
    try {
      return await this.limit(check);
    } finally {
      this.accepted--;
    }
  }
}
