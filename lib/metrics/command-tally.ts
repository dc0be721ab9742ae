import type { Metric } from 'prom-client';

/** One command's counts since start: replies by outcome and a duration histogram. */
export interface CommandSeries {
  ok: number;
  err: number;
  /** Observations per bucket: index i counts durations <= upperBounds[i] (and > the one before); the last slot is +Inf. */
  readonly buckets: Float64Array;
  sumSeconds: number;
}

/**
 * Per-command counts kept in plain numbers. prom-client's own Counter and Histogram hash
 * and validate their labels on every call (about 1.5 µs together); at the hundreds of
 * thousands of commands a second a server answers, that alone would cost a large share
 * of its time. Here a command costs a Map lookup and a short bucket scan, and prom-client
 * reads the totals when it is scraped.
 */
export class CommandTally {
  private readonly byCommand = new Map<string, CommandSeries>();

  constructor(readonly upperBounds: readonly number[]) {}

  record(command: string, ok: boolean, seconds: number): void {
    let series = this.byCommand.get(command);
    if (series === undefined) {
      series = { ok: 0, err: 0, buckets: new Float64Array(this.upperBounds.length + 1), sumSeconds: 0 };
      this.byCommand.set(command, series);
    }
    if (ok) series.ok++;
    else series.err++;
    const bounds = this.upperBounds;
    let bucket = 0;
    while (bucket < bounds.length && seconds > bounds[bucket]!) bucket++;
    series.buckets[bucket]!++;
    series.sumSeconds += seconds;
  }

  entries(): IterableIterator<[string, CommandSeries]> {
    return this.byCommand.entries();
  }
}

interface ExportedValue {
  metricName: string;
  labels: Record<string, string | number>;
  value: number;
}

/**
 * The tally's durations as a prom-client histogram labelled by command: an object of the
 * shape prom-client's registry formats (`get()`), so `/metrics` prints it like any other.
 */
export function durationHistogram(name: string, help: string, tally: CommandTally): Metric {
  const metric = {
    name,
    help,
    type: 'histogram',
    aggregator: 'sum' as const,
    async get() {
      const values: ExportedValue[] = [];
      for (const [command, series] of tally.entries()) {
        let cumulative = 0;
        tally.upperBounds.forEach((bound, i) => {
          cumulative += series.buckets[i]!;
          values.push({ metricName: `${name}_bucket`, labels: { le: bound, command }, value: cumulative });
        });
        const count = series.ok + series.err;
        values.push({ metricName: `${name}_bucket`, labels: { le: '+Inf', command }, value: count });
        values.push({ metricName: `${name}_sum`, labels: { command }, value: series.sumSeconds });
        values.push({ metricName: `${name}_count`, labels: { command }, value: count });
      }
      return { name, help, type: 'histogram', aggregator: 'sum', values };
    },
  };
  return metric as unknown as Metric;
}
