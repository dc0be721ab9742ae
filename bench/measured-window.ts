const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * The measured stretch of a closed-loop run: the loops keep going until `stopped` and count
 * only what ends while `recording`. Shared by the storage, session-cycle and filesystem benches.
 */
export class MeasuredWindow {
  recording = false;
  stopped = false;

  /**
   * Lets the loops warm up, records for `durationMs`, then stops them and waits for them to end;
   * resolves with the recorded milliseconds. `bracket`, called as recording starts, returns what
   * to call as it ends (CPU counters read around exactly the recorded stretch).
   */
  async run(loops: Array<Promise<unknown>>, warmupMs: number, durationMs: number, bracket?: () => () => void): Promise<number> {
    await sleep(warmupMs);
    const ended = bracket?.();
    this.recording = true;
    const started = performance.now();
    await sleep(durationMs);
    this.recording = false;
    const elapsed = performance.now() - started;
    ended?.();
    this.stopped = true;
    await Promise.all(loops);
    return elapsed;
  }
}

/** The `p` quantile (0–1) of latencies sorted ascending; 0 when there are none. */
export function quantile(sorted: readonly number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))] ?? 0;
}
