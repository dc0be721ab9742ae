/**
 * Bytes of unfinished request lines held across all connections (maxInputBuffer). Past the
 * limit, a connection that adds to it is no longer read (TCP backpressure: the rest waits in
 * the kernel and the client's send buffer) until the total falls below the limit again.
 * Nothing is refused, and memory stays bounded: the limit, plus one line that is allowed to
 * finish, plus at most one read (64 KiB) per waiting connection.
 *
 * One holder at a time may go on reading past the limit until its line is complete, so
 * clients that all hold half a line never wait for each other forever.
 */
export class InputBudget {
  private used = 0;
  private finisher: object | null = null;
  private readonly waiting = new Map<object, () => void>();

  constructor(readonly limit: number) {}

  /** Bytes held now. */
  get bytes(): number {
    return this.used;
  }

  /** Connections that are not read until the total falls. */
  get waitingCount(): number {
    return this.waiting.size;
  }

  /**
   * Adds `bytes` held by `holder`. True when it may go on reading; false when it must stop
   * reading until `resume` is called.
   */
  take(holder: object, bytes: number, resume: () => void): boolean {
    this.used += bytes;
    if (this.used <= this.limit || this.finisher === holder) return true;
    if (this.finisher === null) {
      this.finisher = holder;
      return true;
    }
    this.waiting.set(holder, resume);
    return false;
  }

  /** Gives back what `holder` held: its line is complete or dropped, or it left. */
  give(holder: object, bytes: number): void {
    this.used -= bytes;
    this.waiting.delete(holder);
    if (this.finisher === holder) this.finisher = null;
    this.wake();
  }

  private wake(): void {
    if (this.waiting.size === 0) return;
    if (this.used < this.limit) {
      const resumes = [...this.waiting.values()];
      this.waiting.clear();
      for (const resume of resumes) resume();
      return;
    }
    if (this.finisher === null) {
      const [holder, resume] = this.waiting.entries().next().value!;
      this.waiting.delete(holder);
      this.finisher = holder;
      resume();
    }
  }
}
