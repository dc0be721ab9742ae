import type { LoadResult } from './load-generator.js';
import { idlePerConnectionKiB, perConnectionKiB, sessionPerConnectionKiB, type MemoryResult } from './memory.js';
import type { TargetName } from './targets.js';

/** The printed tables. Numbers only; no judgement beyond the targets the issue names. */

export interface Scenario {
  name: string;
  connections: number;
  depth: number;
}

export type ThroughputResults = Map<string, Map<TargetName, LoadResult>>;

/** Ratio targets from the issue: sessionserver's ops/s divided by the other's. */
const RATIO_TARGETS: Record<string, Partial<Record<TargetName, number>>> = {
  '50x1': { 'redis-server': 1.0 },
  '50x16': { 'redis-server': 1.0, 'bare-node': 0.7 },
};

export const MEMORY_TARGET_KIB = 8;

function table(rows: string[][], alignRight: boolean[]): string {
  const widths = rows[0]!.map((_, column) => Math.max(...rows.map((row) => row[column]!.length)));
  return rows
    .map((row) =>
      row
        .map((cell, column) => (alignRight[column] ? cell.padStart(widths[column]!) : cell.padEnd(widths[column]!)))
        .join('  ')
        .trimEnd(),
    )
    .join('\n');
}

const integer = (n: number) => Math.round(n).toLocaleString('en-US');
const ms = (n: number) => (Number.isFinite(n) ? n.toFixed(3) : '-');
const cpu = (cores: number) => `${Math.round(cores * 100)}%`;
const kib = (n: number) => n.toFixed(1);
const mib = (kibibytes: number) => (kibibytes / 1024).toFixed(1);

export function throughputTable(scenarios: Scenario[], targets: TargetName[], results: ThroughputResults): string {
  const rows = [['scenario', 'target', 'ops/s', 'p50 ms', 'p99 ms', 'errors', 'server cpu', 'ops/server-cpu-s', 'gen cpu', 'others cpu', 'replies/read']];
  for (const scenario of scenarios) {
    targets.forEach((target, index) => {
      const result = results.get(scenario.name)?.get(target);
      const label = index === 0 ? scenario.name : '';
      if (!result) rows.push([label, target, 'skipped', '', '', '', '', '', '', '', '']);
      else {
        rows.push([
          label,
          target,
          integer(result.opsPerSecond),
          ms(result.p50Ms),
          ms(result.p99Ms),
          String(result.errors),
          result.serverCpu === null ? '-' : cpu(result.serverCpu),
          result.serverCpu ? integer(result.opsPerSecond / result.serverCpu) : '-',
          cpu(result.generatorCpu),
          result.otherCpu === null ? '-' : cpu(result.otherCpu),
          result.repliesPerRead.toFixed(1),
        ]);
      }
    });
  }
  return table(rows, [false, false, true, true, true, true, true, true, true, true, true]);
}

/** A line to print under the tables when other work on the machine took CPU during a run. */
export function noiseWarning(results: ThroughputResults, threshold = 0.25): string | null {
  let worst = 0;
  for (const byTarget of results.values()) {
    for (const result of byTarget.values()) worst = Math.max(worst, result.otherCpu ?? 0);
  }
  if (worst < threshold) return null;
  return `note: other processes kept up to ${cpu(worst)} of a core busy during some runs ('others cpu'); ops/s and latencies there are low and noisy. ops/server-cpu-s holds up better; rerun on a quiet machine for clean ops/s.`;
}

/** ops/s per core the server kept busy: steadier than ops/s when other work shares the machine. */
const perServerCpu = (r: LoadResult) => (r.serverCpu ? r.opsPerSecond / r.serverCpu : Number.NaN);
const times = (ratio: number) => (Number.isFinite(ratio) ? `${ratio.toFixed(2)}x` : '-');

export function ratioTable(scenarios: Scenario[], results: ThroughputResults): string {
  const rows = [['scenario', 'sessionserver/redis', 'target', 'per server cpu', 'sessionserver/bare', 'target', 'per server cpu']];
  for (const scenario of scenarios) {
    const byTarget = results.get(scenario.name);
    const ours = byTarget?.get('sessionserver');
    const cells = [scenario.name];
    for (const other of ['redis-server', 'bare-node'] as const) {
      const theirs = byTarget?.get(other);
      const goal = RATIO_TARGETS[scenario.name]?.[other];
      if (!ours || !theirs) {
        cells.push('-', goal === undefined ? '' : `>= ${goal.toFixed(1)}x`, '-');
        continue;
      }
      const ratio = ours.opsPerSecond / theirs.opsPerSecond;
      cells.push(times(ratio), goal === undefined ? '' : `>= ${goal.toFixed(1)}x ${ratio >= goal ? 'met' : 'MISSED'}`, times(perServerCpu(ours) / perServerCpu(theirs)));
    }
    rows.push(cells);
  }
  return table(rows, [false, true, false, true, true, false, true]);
}

export function memoryTable(results: MemoryResult[]): string {
  if (results.length === 0) return '';
  const first = results[0]!;
  const idle = first.connections - first.withSession;
  const rows = [['target', 'base MiB', `+${idle} idle MiB`, `+${first.withSession} w/ session MiB`, 'KiB/conn', 'idle KiB/conn', 'session KiB/conn', 'heap KiB/conn', 'target']];
  for (const r of results) {
    const perConnection = perConnectionKiB(r);
    const heap = r.heapKiB ? kib((r.heapKiB[2] - r.heapKiB[0]) / r.connections) : '-';
    const verdict = r.target === 'sessionserver' ? `<= ${MEMORY_TARGET_KIB} KiB ${perConnection <= MEMORY_TARGET_KIB ? 'met' : 'MISSED'}` : '';
    rows.push([
      r.target,
      mib(r.baselineKiB),
      mib(r.afterIdleKiB),
      mib(r.afterAllKiB),
      kib(perConnection),
      kib(idlePerConnectionKiB(r)),
      kib(sessionPerConnectionKiB(r)),
      heap,
      verdict,
    ]);
  }
  return table(rows, [false, true, true, true, true, true, true, true, false]);
}
