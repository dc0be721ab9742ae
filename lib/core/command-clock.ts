import { performance } from 'node:perf_hooks';

/**
 * Times commands for afterCommand taps (metrics, logging) at about one clock read per
 * command, the largest cost of watching them. Pipelined commands run back to back in one
 * synchronous run, so each starts when the one before it replied: the reading that ends a
 * command is the next one's start until the run is over (a microtask turn). A command
 * that starts a run reads the clock itself.
 */
export class CommandClock {
  private last = 0;
  private fresh = false;
  private readonly expire = (): void => {
    this.fresh = false;
  };

  /** When a command starts (ms, performance.now()'s scale). */
  start(): number {
    if (!this.fresh) this.keep(performance.now());
    return this.last;
  }

  /** Milliseconds since `started`; the reading is kept as the start of the next command in this run. */
  since(started: number): number {
    const now = performance.now();
    this.keep(now);
    return now - started;
  }

  private keep(now: number): void {
    this.last = now;
    if (!this.fresh) {
      this.fresh = true;
      queueMicrotask(this.expire);
    }
  }
}
