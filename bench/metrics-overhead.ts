/**
 * What the metrics plugin costs: sessionserver at 50 connections x depth 16 (put/get) with
 * and without `metrics: { port }`, in rounds that alternate the order (A B, B A, …) so drift
 * on a shared machine hits both alike. During the runs with metrics, /metrics is scraped
 * every second, far more often than Prometheus would. Part of `npm run bench`
 * (`--only=metrics`); the issue asks for >= 0.9x the throughput without.
 */
import type { ChildProcess } from 'node:child_process';
import { forkBenchScript, nextMessage, stopWithin } from './children.js';
import type { LoadResult } from './load-generator.js';
import type { RemoteLoadGenerator } from './remote-load-generator.js';
import { startSessionserver, type Target } from './targets.js';

export const METRICS_OVERHEAD_TARGET = 0.9;
const CONNECTIONS = 50;
const DEPTH = 16;
const SCRAPE_EVERY_MS = 1000;

export interface MetricsOverheadOptions {
  quick: boolean;
  warmupMs: number;
  durationMs: number;
  keySpace: number;
}

interface MetricsTarget {
  target: Target;
  metricsPort: number;
}

async function startWithMetrics(): Promise<MetricsTarget> {
  const child: ChildProcess = forkBenchScript('serve-sessionserver-metrics.ts');
  const metrics = nextMessage(child, (m): m is { type: 'metrics-port'; port: number } => m?.type === 'metrics-port', 15_000, 'sessionserver+metrics');
  const listening = nextMessage(child, (m): m is { type: 'listening'; port: number } => m?.type === 'listening', 15_000, 'sessionserver+metrics');
  const [{ port: metricsPort }, { port }] = await Promise.all([metrics, listening]);
  const target: Target = {
    name: 'sessionserver',
    dialect: 'sessionserver',
    host: '127.0.0.1',
    port,
    pid: child.pid!,
    settle: async () => ({}),
    stop: () => stopWithin(child, 10_000, () => child.send({ type: 'stop' })),
  };
  return { target, metricsPort };
}

/** Scrapes /metrics every second until stopped; resolves with the number of scrapes and the last body. */
function scrapeWhile(metricsPort: number): { stop(): Promise<{ scrapes: number; last: string }> } {
  let scrapes = 0;
  let last = '';
  let running = true;
  const loop = (async () => {
    while (running) {
      const response = await fetch(`http://127.0.0.1:${metricsPort}/metrics`, { signal: AbortSignal.timeout(5000) });
      last = await response.text();
      scrapes++;
      await new Promise((resolve) => setTimeout(resolve, SCRAPE_EVERY_MS));
    }
  })();
  return {
    async stop() {
      running = false;
      await loop;
      return { scrapes, last };
    },
  };
}

const sumCommands = (exposition: string) =>
  [...exposition.matchAll(/^sessionserver_commands_total\{[^}]*\} (\d+)$/gm)].reduce((total, [, n]) => total + Number(n), 0);

const integer = (n: number) => Math.round(n).toLocaleString('en-US');
const perCpu = (r: LoadResult) => (r.serverCpu ? r.opsPerSecond / r.serverCpu : Number.NaN);
const mean = (values: number[]) => values.reduce((a, b) => a + b, 0) / values.length;

/** Runs the comparison and returns its printed report. */
export async function runMetricsOverheadBench(options: MetricsOverheadOptions, generator: RemoteLoadGenerator): Promise<string> {
  const rounds = options.quick ? 2 : 4;
  const plain = await startSessionserver();
  const withMetrics = await startWithMetrics();
  const without: LoadResult[] = [];
  const withOn: LoadResult[] = [];
  let scrapes = 0;
  let counted = 0;
  try {
    const run = (target: Target) =>
      generator.run({
        host: target.host,
        port: target.port,
        dialect: target.dialect,
        connections: CONNECTIONS,
        depth: DEPTH,
        warmupMs: options.warmupMs,
        durationMs: options.durationMs,
        keySpace: options.keySpace,
        serverPid: target.pid,
      });
    for (let round = 0; round < rounds; round++) {
      const order = round % 2 === 0 ? ['without', 'with'] : ['with', 'without'];
      for (const which of order) {
        if (which === 'without') {
          without.push(await run(plain));
        } else {
          const scraper = scrapeWhile(withMetrics.metricsPort);
          withOn.push(await run(withMetrics.target));
          const scraped = await scraper.stop();
          scrapes += scraped.scrapes;
          counted = sumCommands(scraped.last);
        }
        const result = which === 'without' ? without.at(-1)! : withOn.at(-1)!;
        console.error(`  metrics ${which.padEnd(7)} round ${round + 1}  ${integer(result.opsPerSecond).padStart(10)} ops/s`);
      }
    }
  } finally {
    await plain.stop();
    await withMetrics.target.stop();
  }
  const rows = [['run', 'without ops/s', 'with ops/s', 'without ops/server-cpu-s', 'with ops/server-cpu-s', 'errors']];
  for (let i = 0; i < rounds; i++) {
    rows.push([String(i + 1), integer(without[i]!.opsPerSecond), integer(withOn[i]!.opsPerSecond), integer(perCpu(without[i]!)), integer(perCpu(withOn[i]!)), String(without[i]!.errors + withOn[i]!.errors)]);
  }
  const widths = rows[0]!.map((_, c) => Math.max(...rows.map((row) => row[c]!.length)));
  const tableText = rows.map((row) => row.map((cell, c) => (c === 0 ? cell.padEnd(widths[c]!) : cell.padStart(widths[c]!))).join('  ')).join('\n');
  const opsRatio = mean(withOn.map((r) => r.opsPerSecond)) / mean(without.map((r) => r.opsPerSecond));
  const cpuRatio = mean(withOn.map(perCpu)) / mean(without.map(perCpu));
  return [
    `metrics overhead: sessionserver at ${CONNECTIONS}x${DEPTH} (put/get), without and with the metrics plugin, ${rounds} alternating rounds; /metrics scraped every ${SCRAPE_EVERY_MS / 1000} s while it runs (${scrapes} scrapes, ${integer(counted)} commands counted in all)`,
    tableText,
    `ratio with/without: ${opsRatio.toFixed(2)}x ops/s, ${cpuRatio.toFixed(2)}x ops/server-cpu-s (target >= ${METRICS_OVERHEAD_TARGET}x; on a busy machine trust the per-cpu ratio)`,
  ].join('\n');
}
