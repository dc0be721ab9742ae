/**
 * The storage drivers under load: `node --import tsx bench/storage.ts [--quick]` (also run
 * by `npm run bench`). sessionserver runs in a child process on each store in turn, a
 * private redis-server serves the Redis store and the direct comparison, and PostgreSQL is
 * the machine's (BENCH_POSTGRES_URL, default postgres://postgres@127.0.0.1:5432/test), in
 * a schema of its own that is dropped afterwards. Two workloads:
 *
 * - put/get: one session per connection, opened once, then pipelined `put`/`get`. The
 *   store is not touched (the open session is in memory), so every store should match
 *   the memory store here.
 * - request: what a web request does: `open <id> rw`, `put`, `get`, `close` (writer lock,
 *   load, save, release), each connection cycling through 64 sessions of its own. Here
 *   the store is the cost; redis-server's line is the same work done directly by the
 *   client (SET NX PX lock, HGET, HSET, PEXPIRE, DEL lock, pipelined).
 */
import { connect, type Socket } from 'node:net';
import { existsSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import pg from 'pg';
import { forkBenchScript, nextMessage, REPO_ROOT, runWhenMain, stopWithin } from './children.js';
import { MeasuredWindow, quantile } from './measured-window.js';
import type { ServerReportMessage } from './messages.js';
import { LineReplyParser, RespReplyParser, type ReplyParser } from './reply-parsers.js';
import { redisServerInstalled, startRedisServer } from './targets.js';

const HOST = '127.0.0.1';
export const POSTGRES_URL = process.env.BENCH_POSTGRES_URL ?? 'postgres://postgres@127.0.0.1:5432/test';
const VALUE = 'v'.repeat(32);
const SESSIONS_PER_CONNECTION = 64;

type TargetKind = 'memory' | 'redis' | 'postgres' | 'redis-server';

interface Workload {
  name: string;
  kind: 'put/get' | 'request';
  connections: number;
}

const WORKLOADS: Workload[] = [
  { name: 'put/get 50x16', kind: 'put/get', connections: 50 },
  { name: 'request 1x1', kind: 'request', connections: 1 },
  { name: 'request 50x1', kind: 'request', connections: 50 },
];

/** What one connection sends: an optional greeting (answered once), then the same kind of batch again and again. */
interface Dialogue {
  greeting: string | null;
  batch(connection: number, round: number): string;
  /** Requests (and replies) in one batch. */
  size: number;
  parser(): ReplyParser;
}

function dialogue(workload: Workload, target: TargetKind): Dialogue {
  const direct = target === 'redis-server';
  if (workload.kind === 'put/get') {
    const depth = 16;
    const lines = (round: number) => {
      let text = '';
      for (let i = 0; i < depth / 2; i++) {
        const key = `k${(round * 8 + i) % 1000}`;
        text += direct ? `SET ${key} ${VALUE}\r\nGET ${key}\r\n` : `put ${key} ${VALUE}\r\nget ${key}\r\n`;
      }
      return text;
    };
    return { greeting: direct ? null : 'new\r\n', batch: (_, round) => lines(round), size: depth, parser: () => (direct ? new RespReplyParser() : new LineReplyParser()) };
  }
  if (direct) {
    return {
      greeting: null,
      batch: (c, round) => {
        const id = `b${c}x${round % SESSIONS_PER_CONNECTION}`;
        return `SET lock:${id} token NX PX 10000\r\nHGET s:${id} k\r\nHSET s:${id} k ${VALUE}\r\nPEXPIRE s:${id} 1440000\r\nDEL lock:${id}\r\n`;
      },
      size: 5,
      parser: () => new RespReplyParser(),
    };
  }
  return {
    greeting: null,
    batch: (c, round) => `open b${c}x${round % SESSIONS_PER_CONNECTION} rw\r\nput k ${VALUE}\r\nget k\r\nclose\r\n`,
    size: 4,
    parser: () => new LineReplyParser(),
  };
}

interface LoopResult {
  /** Batches (put/get: requests; request: whole request cycles) per second. */
  perSecond: number;
  p50: number;
  p99: number;
  errors: number;
}

/** Closed loop: each connection sends a batch, waits for all its replies, sends the next. */
async function closedLoop(port: number, workload: Workload, talk: Dialogue, warmupMs: number, durationMs: number): Promise<LoopResult> {
  const sockets = await Promise.all(Array.from({ length: workload.connections }, () => openSocket(port)));
  const latencies: number[] = [];
  const window = new MeasuredWindow();
  let batches = 0;
  let errors = 0;
  const loops = sockets.map(async (socket, c) => {
    const parser = talk.parser();
    let pending = 0;
    let wake: (() => void) | null = null;
    socket.on('data', (chunk: Buffer) => {
      pending -= parser.feed(chunk);
      if (pending <= 0 && wake) wake();
    });
    const exchange = (text: string, replies: number) =>
      new Promise<void>((resolve) => {
        pending = replies;
        wake = resolve;
        socket.write(text);
      });
    if (talk.greeting) await exchange(talk.greeting, 1);
    for (let round = 0; !window.stopped; round++) {
      const started = performance.now();
      await exchange(talk.batch(c, round), talk.size);
      if (window.recording && !window.stopped) {
        latencies.push(performance.now() - started);
        batches++;
      }
    }
    errors += parser.errors;
  });
  const elapsed = await window.run(loops, warmupMs, durationMs);
  for (const socket of sockets) socket.destroy();
  latencies.sort((a, b) => a - b);
  const perBatch = workload.kind === 'put/get' ? talk.size : 1;
  return { perSecond: (batches * perBatch * 1000) / elapsed, p50: quantile(latencies, 0.5), p99: quantile(latencies, 0.99), errors };
}

function openSocket(port: number): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, HOST, () => resolve(socket));
    socket.setNoDelay(true);
    socket.once('error', reject);
  });
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

interface Running {
  port: number;
  stop(): Promise<void>;
}

async function startSessionserverOn(storage: Record<string, unknown>): Promise<Running> {
  process.env.BENCH_STORAGE = JSON.stringify(storage);
  const child = forkBenchScript('serve-storage.ts');
  const isListening = (m: ServerReportMessage | undefined): m is Extract<ServerReportMessage, { type: 'listening' }> => m?.type === 'listening';
  const { port } = await nextMessage(child, isListening, 15_000, `sessionserver (${String(storage.storage)})`);
  return { port, stop: () => stopWithin(child, 10_000, () => child.send({ type: 'stop' })) };
}

/** Null when PostgreSQL answers, else why not. */
export async function postgresReachable(): Promise<string | null> {
  const client = new pg.Client({ connectionString: POSTGRES_URL, connectionTimeoutMillis: 2000 });
  try {
    await client.connect();
    await client.end();
    return null;
  } catch (error) {
    return (error as Error).message;
  }
}

export async function postgresAdmin(sql: string): Promise<void> {
  const client = new pg.Client({ connectionString: POSTGRES_URL });
  await client.connect();
  try {
    await client.query(sql);
  } finally {
    await client.end();
  }
}

export interface StorageBenchOptions {
  quick: boolean;
}

/** Runs every workload on every store; returns the report (progress goes to stderr). */
export async function runStorageBench(options: StorageBenchOptions): Promise<string> {
  if (!existsSync(join(REPO_ROOT, 'dist', 'storage', 'redis.js'))) {
    const build = spawnSync('npm', ['run', 'build'], { cwd: REPO_ROOT, stdio: 'inherit' });
    if (build.status !== 0) throw new Error('npm run build failed');
  }
  const warmupMs = options.quick ? 300 : 1000;
  const durationMs = options.quick ? 1500 : 3000;
  const notes: string[] = [];
  const redis = redisServerInstalled() ? await startRedisServer() : null;
  if (!redis) notes.push('redis-server is not installed: the Redis store and redis-server were skipped');
  const postgresProblem = await postgresReachable();
  if (postgresProblem) notes.push(`PostgreSQL at ${POSTGRES_URL.replace(/\/\/[^@/]*@/, '//')} is unreachable (${postgresProblem}): skipped`);
  const schema = `bench_${process.pid}`;
  if (!postgresProblem) await postgresAdmin(`CREATE SCHEMA ${schema}`);

  const results = new Map<string, Map<TargetKind, LoopResult>>(WORKLOADS.map((w) => [w.name, new Map()]));
  const measure = async (target: TargetKind, port: number) => {
    for (const workload of WORKLOADS) {
      const result = await closedLoop(port, workload, dialogue(workload, target), warmupMs, durationMs);
      results.get(workload.name)!.set(target, result);
      console.error(`  ${workload.name.padEnd(14)} ${target.padEnd(13)} ${Math.round(result.perSecond).toLocaleString('en-US').padStart(9)}/s`);
      await sleep(200);
    }
  };
  try {
    const stores: Array<[TargetKind, Record<string, unknown> | null]> = [
      ['memory', { storage: 'memory' }],
      ['redis', redis ? { storage: 'redis', redisUrl: `redis://${HOST}:${redis.port}` } : null],
      ['postgres', postgresProblem ? null : { storage: 'postgres', postgresUrl: POSTGRES_URL, postgresTable: `${schema}.sessions` }],
    ];
    for (const [kind, storage] of stores) {
      if (!storage) continue;
      const server = await startSessionserverOn(storage);
      try {
        await measure(kind, server.port);
      } finally {
        await server.stop();
      }
    }
    if (redis) await measure('redis-server', redis.port);
  } finally {
    await redis?.stop();
    if (!postgresProblem) await postgresAdmin(`DROP SCHEMA ${schema} CASCADE`).catch(() => {});
  }
  return report(results, notes);
}

function report(results: Map<string, Map<TargetKind, LoopResult>>, notes: string[]): string {
  const rows: string[][] = [['workload', 'target', 'per second', 'p50 ms', 'p99 ms', 'errors', 'vs memory', 'vs redis-server']];
  for (const workload of WORKLOADS) {
    const byTarget = results.get(workload.name)!;
    const memory = byTarget.get('memory');
    const direct = byTarget.get('redis-server');
    let first = true;
    for (const target of ['memory', 'redis', 'postgres', 'redis-server'] as const) {
      const result = byTarget.get(target);
      const label = first ? workload.name : '';
      first = false;
      if (!result) {
        rows.push([label, target, 'skipped', '', '', '', '', '']);
        continue;
      }
      const ratio = (base: LoopResult | undefined) => (base && target !== 'memory' && target !== 'redis-server' ? (result.perSecond / base.perSecond).toFixed(2) : '');
      rows.push([
        label,
        target === 'redis-server' ? 'redis-server direct' : `sessionserver ${target}`,
        Math.round(result.perSecond).toLocaleString('en-US'),
        result.p50.toFixed(2),
        result.p99.toFixed(2),
        String(result.errors),
        ratio(memory),
        target === 'redis' ? ratio(direct) : '',
      ]);
    }
  }
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((row) => row[i]!.length)));
  const lines = rows.map((row) => row.map((cell, i) => (i < 2 ? cell.padEnd(widths[i]!) : cell.padStart(widths[i]!))).join('  ').trimEnd());
  return [
    'storage drivers: put/get = requests/s on an open session (store untouched), 16 pipelined per connection;',
    'request = open rw + put + get + close cycles/s (writer lock, load, save, release), 64 sessions per connection.',
    'p50/p99: per batch (put/get: 16 requests; request: one cycle). vs memory / vs redis-server: ratio of the per-second figures.',
    ...lines,
    ...notes.map((note) => `note: ${note}`),
  ].join('\n');
}

runWhenMain(import.meta.url, 'storage', ({ quick }) => runStorageBench({ quick }));
