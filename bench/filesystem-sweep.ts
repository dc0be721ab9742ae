/**
 * The filesystem store (the embedded default) at scale: `node --import tsx bench/filesystem-sweep.ts [--quick]`
 * (also run by `npm run bench`, `--only=filesystem`). Two figures:
 *
 * - cycles/s: sessionserver (built package, its own process) on a fresh folder, 20 clients,
 *   one request in flight each: `new`, `put k <64 B>`, `close`, again and again. Every close
 *   is a crash-atomic write (temp file, rename), without fsync and with `--fsync`.
 * - sweep: a folder of 100,000 stored sessions (BENCH_SWEEP_SESSIONS), none idle long enough
 *   to expire: how long the store takes to open (it learns the folder once) and what one gc
 *   sweep that deletes nothing costs, as a server runs it every gcInterval.
 */
import { mkdtempSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadBuiltPackage } from './built-package.js';
import { forkBenchScript, nextMessage, runWhenMain, stopWithin } from './children.js';
import { MeasuredWindow } from './measured-window.js';
import { SerialLineClient } from './serial-line-client.js';
import type { ServerReportMessage } from './messages.js';

const HOST = '127.0.0.1';
const VALUE = 'v'.repeat(64);
const CLIENTS = 20;
const SWEEP_SESSIONS = Number(process.env.BENCH_SWEEP_SESSIONS ?? 100_000);
// The server's default max lifetime: nothing written in this run is idle that long.
const MAX_IDLE_MS = 1440 * 1000;
const SWEEPS = 5;

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** One client: `new`, `put`, `close`, one line in flight. */
class NewPutCloseClient {
  private constructor(private readonly lines: SerialLineClient) {}

  static async connect(port: number): Promise<NewPutCloseClient> {
    return new NewPutCloseClient(await SerialLineClient.connect(port, HOST));
  }

  async cycle(): Promise<void> {
    await this.lines.request('new\r\n');
    await this.lines.request(`put k ${VALUE}\r\n`);
    await this.lines.request('close\r\n');
  }

  close(): void {
    this.lines.close();
  }
}

async function measureCycles(fsync: boolean, warmupMs: number, durationMs: number): Promise<{ perSecond: number; errors: number }> {
  const folder = mkdtempSync(join(tmpdir(), 'sessionserver-fs-cycle-'));
  process.env.BENCH_STORAGE = JSON.stringify({ storage: 'filesystem', savePath: folder, fsync });
  const child = forkBenchScript('serve-storage.ts');
  try {
    const isListening = (m: ServerReportMessage | undefined): m is Extract<ServerReportMessage, { type: 'listening' }> => m?.type === 'listening';
    const { port } = await nextMessage(child, isListening, 15_000, 'sessionserver (filesystem)');
    const clients = await Promise.all(Array.from({ length: CLIENTS }, () => NewPutCloseClient.connect(port)));
    const window = new MeasuredWindow();
    let cycles = 0;
    let errors = 0;
    const loops = clients.map(async (client) => {
      while (!window.stopped) {
        try {
          await client.cycle();
          if (window.recording) cycles++;
        } catch {
          if (window.recording) errors++;
          await sleep(10);
        }
      }
    });
    const elapsed = await window.run(loops, warmupMs, durationMs);
    for (const client of clients) client.close();
    return { perSecond: (cycles * 1000) / elapsed, errors };
  } finally {
    await stopWithin(child, 10_000, () => child.send({ type: 'stop' }));
    rmSync(folder, { recursive: true, force: true });
  }
}

interface SweepResult {
  sessions: number;
  openMs: number;
  sweepMs: number[];
  removed: number;
}

/** A folder of `count` session files, last accessed in the past few minutes, written directly. */
function fillFolder(folder: string, count: number): void {
  const now = Date.now() / 1000;
  for (let i = 0; i < count; i++) {
    const path = join(folder, `sess_${i.toString(16).padStart(32, '0')}`);
    writeFileSync(path, `{"v":1,"data":{"k":"${VALUE}"}}`, { mode: 0o600 });
    const at = now - (i % 300);
    utimesSync(path, at, at);
  }
}

async function measureSweep(sessions: number): Promise<SweepResult> {
  const { FilesystemStore } = await loadBuiltPackage();
  const folder = mkdtempSync(join(tmpdir(), 'sessionserver-fs-sweep-'));
  try {
    console.error(`  filesystem sweep: writing ${sessions.toLocaleString('en-US')} session files`);
    fillFolder(folder, sessions);
    const store = new FilesystemStore({ savePath: folder, timeout: 0 });
    let started = performance.now();
    await store.open();
    const openMs = performance.now() - started;
    const sweepMs: number[] = [];
    let removed = 0;
    for (let i = 0; i < SWEEPS; i++) {
      started = performance.now();
      removed += await store.collect(MAX_IDLE_MS, () => false);
      sweepMs.push(performance.now() - started);
    }
    await store.close();
    return { sessions, openMs, sweepMs, removed };
  } finally {
    rmSync(folder, { recursive: true, force: true });
  }
}

export interface FilesystemBenchOptions {
  quick: boolean;
}

/** Runs both measurements; returns the report (progress goes to stderr). */
export async function runFilesystemBench(options: FilesystemBenchOptions): Promise<string> {
  const warmupMs = options.quick ? 300 : 1000;
  const durationMs = options.quick ? 1500 : 3000;
  const rows: string[][] = [['measure', 'figure']];
  for (const fsync of [false, true]) {
    const result = await measureCycles(fsync, warmupMs, durationMs);
    const label = `new/put/close, ${CLIENTS} clients${fsync ? ', --fsync' : ''}`;
    console.error(`  filesystem ${label}: ${Math.round(result.perSecond).toLocaleString('en-US')}/s`);
    rows.push([label, `${Math.round(result.perSecond).toLocaleString('en-US')} cycles/s${result.errors ? ` (${result.errors} errors)` : ''}`]);
  }
  const sweep = await measureSweep(SWEEP_SESSIONS);
  const sorted = [...sweep.sweepMs].sort((a, b) => a - b);
  const median = sorted[Math.floor(sorted.length / 2)]!;
  const stored = sweep.sessions.toLocaleString('en-US');
  rows.push([`open with ${stored} stored sessions`, `${sweep.openMs.toFixed(0)} ms`]);
  rows.push([`gc sweep of ${stored} sessions, none expired`, `${median < 10 ? median.toFixed(2) : median.toFixed(0)} ms (median of ${SWEEPS}; ${sweep.removed} removed)`]);
  const widths = [0, 1].map((i) => Math.max(...rows.map((row) => row[i]!.length)));
  return [
    'filesystem store: new/put/close = cycles/s, one request in flight per client, each close a crash-atomic write (temp file + rename);',
    'sweep = one collect() with the default max lifetime over a folder where nothing has expired (a server runs one every gcInterval).',
    ...rows.map((row) => `${row[0]!.padEnd(widths[0]!)}  ${row[1]!.padStart(widths[1]!)}`),
  ].join('\n');
}

runWhenMain(import.meta.url, 'filesystem', ({ quick }) => runFilesystemBench({ quick }));
