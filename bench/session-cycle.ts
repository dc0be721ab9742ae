/**
 * The session cycle of a web request, per store: `node --import tsx bench/session-cycle.ts [--quick]`
 * (also run by `npm run bench`, `--only=cycle`). Each simulated client works on its own session
 * id, one request in flight: `open <id> rw`, `put k <64 B>`, `get k`, `close`, again and again,
 * at 1 and at 50 clients. In the same run the same cycle is done directly on the database by a
 * competent hand-written client that locks for itself (bench/direct-redis.ts,
 * bench/direct-postgres.ts): the bar. The memory store is the framework's own ceiling.
 *
 * Redis is a private redis-server; PostgreSQL the machine's (BENCH_POSTGRES_URL), in a schema of
 * its own, dropped afterwards. BENCH_CYCLE_STORES=redis,postgres limits the stores measured.
 * The clients (line or direct) run in this process, the servers in their own: on a 2-core
 * machine the server, the database and the clients share the CPU, as the goals assume.
 */
import { mkdirSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { forkBenchScript, nextMessage, runWhenMain, stopWithin } from './children.js';
import { createDirectTable, DirectPostgresClient } from './direct-postgres.js';
import { DirectRedisClient } from './direct-redis.js';
import { MeasuredWindow, quantile } from './measured-window.js';
import type { ServerReportMessage } from './messages.js';
import { formatProfileSummary } from './profile-summary.js';
import { processCpuMs, SerialLineClient } from './serial-line-client.js';
import { POSTGRES_URL, postgresAdmin, postgresReachable } from './storage.js';
import { PROFILE_DIR, redisServerInstalled, startRedisServer } from './targets.js';

const HOST = '127.0.0.1';
const VALUE = 'v'.repeat(64);
const CLIENT_COUNTS = [1, 50];
const STORES = ['memory', 'filesystem', 'filesystem --fsync', 'redis', 'postgres'] as const;
type StoreName = (typeof STORES)[number];

/** One simulated client: runs one whole cycle per call, rejecting on any error reply. */
export interface CycleClient {
  cycle(): Promise<void>;
  close(): Promise<void>;
}

interface CycleResult {
  perSecond: number;
  p50: number;
  p99: number;
  errors: number;
  /** CPU of the sessionserver process per cycle, µs; null for direct runs. */
  serverUs: number | null;
  /** CPU of this process (the clients) per cycle, µs. */
  clientUs: number;
  /** CPU of redis-server per cycle, µs; null when not measured. */
  databaseUs: number | null;
}

interface Row {
  store: StoreName;
  clients: number;
  target: 'sessionserver' | 'direct';
  result: CycleResult;
}

/** A sessionserver client: one line out, one reply back, four per cycle. */
class LineCycleClient implements CycleClient {
  private constructor(
    private readonly lines: SerialLineClient,
    private readonly id: string,
  ) {}

  static async connect(port: number, id: string): Promise<LineCycleClient> {
    return new LineCycleClient(await SerialLineClient.connect(port, HOST), id);
  }

  async cycle(): Promise<void> {
    await this.lines.request(`open ${this.id} rw\r\n`);
    await this.lines.request(`put k ${VALUE}\r\n`);
    await this.lines.request('get k\r\n');
    await this.lines.request('close\r\n');
  }

  async close(): Promise<void> {
    this.lines.close();
  }
}

const ownCpuMs = () => {
  const { user, system } = process.cpuUsage();
  return (user + system) / 1000;
};

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Closed loop: every client runs cycles back to back; counts those that end inside the window. */
async function runCycles(clients: CycleClient[], warmupMs: number, durationMs: number, pids: { server?: number; database?: number }): Promise<CycleResult> {
  const latencies: number[] = [];
  const window = new MeasuredWindow();
  let errors = 0;
  const loops = clients.map(async (client) => {
    while (!window.stopped) {
      const started = performance.now();
      try {
        await client.cycle();
        if (window.recording) latencies.push(performance.now() - started);
      } catch {
        if (window.recording) errors++;
        await sleep(10);
      }
    }
  });
  let serverUs: number | null = null;
  let databaseUs: number | null = null;
  let clientUs = 0;
  const elapsed = await window.run(loops, warmupMs, durationMs, () => {
    const before = { server: pids.server && processCpuMs(pids.server), database: pids.database && processCpuMs(pids.database), own: ownCpuMs() };
    return () => {
      const cycles = latencies.length;
      const perCycle = (from: number | null | undefined, pid: number | undefined) => {
        const after = pid ? processCpuMs(pid) : null;
        return from != null && after != null && cycles > 0 ? ((after - from) * 1000) / cycles : null;
      };
      serverUs = perCycle(before.server, pids.server);
      databaseUs = perCycle(before.database, pids.database);
      clientUs = cycles > 0 ? ((ownCpuMs() - before.own) * 1000) / cycles : 0;
    };
  });
  const cycles = latencies.length;
  latencies.sort((a, b) => a - b);
  return { perSecond: (cycles * 1000) / elapsed, p50: quantile(latencies, 0.5), p99: quantile(latencies, 0.99), errors, serverUs, clientUs, databaseUs };
}

interface Server {
  port: number;
  pid: number;
  profilePath(): string | undefined;
  stop(): Promise<void>;
}

/** sessionserver (built package) on one store, in its own process. */
async function startSessionserver(storage: Record<string, unknown>, cpuProfile: boolean): Promise<Server> {
  process.env.BENCH_STORAGE = JSON.stringify(storage);
  let profileDir: string | undefined;
  const nodeOptions: string[] = [];
  if (cpuProfile) {
    profileDir = join(PROFILE_DIR, `cycle-${String(storage.storage)}-${Date.now()}`);
    mkdirSync(profileDir, { recursive: true });
    nodeOptions.push('--cpu-prof', `--cpu-prof-dir=${profileDir}`, '--cpu-prof-interval=250');
  }
  const child = forkBenchScript('serve-storage.ts', nodeOptions);
  const isListening = (m: ServerReportMessage | undefined): m is Extract<ServerReportMessage, { type: 'listening' }> => m?.type === 'listening';
  const { port } = await nextMessage(child, isListening, 15_000, `sessionserver (${String(storage.storage)})`);
  return {
    port,
    pid: child.pid!,
    profilePath: () => {
      if (!profileDir) return undefined;
      const name = readdirProfiles(profileDir, child.pid!);
      return name && join(profileDir, name);
    },
    stop: () => stopWithin(child, 10_000, () => child.send({ type: 'stop' })),
  };
}

/** Node names profiles CPU.<date>.<time>.<pid>.<thread>.<seq>.cpuprofile; the main thread is 0. */
function readdirProfiles(dir: string, pid: number): string | undefined {
  try {
    return readdirSync(dir).find((file) => file.startsWith('CPU.') && file.includes(`.${pid}.0.`));
  } catch {
    return undefined;
  }
}

async function connectAll<C>(count: number, make: (i: number) => Promise<C>): Promise<C[]> {
  return Promise.all(Array.from({ length: count }, (_, i) => make(i)));
}

async function closeAll(clients: CycleClient[]): Promise<void> {
  await Promise.all(clients.map((client) => client.close()));
}

export interface SessionCycleBenchOptions {
  quick: boolean;
  cpuProfile?: boolean;
}

/** Runs the session cycle on every store (and directly on Redis and PostgreSQL); returns the report. */
export async function runSessionCycleBench(options: SessionCycleBenchOptions): Promise<string> {
  const warmupMs = options.quick ? 300 : 1000;
  const durationMs = options.quick ? 1500 : 3000;
  const only = process.env.BENCH_CYCLE_STORES?.split(',').map((s) => s.trim());
  const stores = STORES.filter((store) => !only || only.includes(store) || only.includes(store.split(' ')[0]!));
  const notes: string[] = [];
  const profiles: string[] = [];
  const rows: Row[] = [];
  let redis: Awaited<ReturnType<typeof startRedisServer>> | null = null;
  let schema: string | null = null;
  const folders: string[] = [];
  const run = async (store: StoreName, target: Row['target'], clients: CycleClient[], pids: { server?: number; database?: number }) => {
    try {
      const result = await runCycles(clients, warmupMs, durationMs, pids);
      rows.push({ store, clients: clients.length, target, result });
      console.error(`  cycle ${store.padEnd(19)} ${String(clients.length).padStart(2)} ${target.padEnd(13)} ${Math.round(result.perSecond).toLocaleString('en-US').padStart(8)}/s`);
    } finally {
      await closeAll(clients);
    }
    await sleep(200);
  };
  try {
    for (const store of stores) {
      let storage: Record<string, unknown>;
      let direct: ((i: number) => Promise<CycleClient>) | null = null;
      let databasePid: number | undefined;
      if (store === 'memory') storage = { storage: 'memory' };
      else if (store.startsWith('filesystem')) {
        const folder = mkdtempSync(join(tmpdir(), 'sessionserver-cycle-'));
        folders.push(folder);
        storage = { storage: 'filesystem', savePath: folder, fsync: store.endsWith('--fsync') };
      } else if (store === 'redis') {
        if (!redisServerInstalled()) {
          notes.push('redis-server is not installed: Redis skipped');
          continue;
        }
        redis = await startRedisServer();
        const port = redis.port;
        databasePid = redis.pid;
        storage = { storage: 'redis', redisUrl: `redis://${HOST}:${port}` };
        direct = (i) => DirectRedisClient.connect(port, `c${i}`, VALUE);
      } else {
        const problem = await postgresReachable();
        if (problem) {
          notes.push(`PostgreSQL at ${POSTGRES_URL.replace(/\/\/[^@/]*@/, '//')} is unreachable (${problem}): skipped`);
          continue;
        }
        schema = `bench_cycle_${process.pid}`;
        await postgresAdmin(`CREATE SCHEMA ${schema}`);
        const admin = new pg.Client({ connectionString: POSTGRES_URL });
        await admin.connect();
        const table = await createDirectTable(admin, schema).finally(() => admin.end());
        storage = { storage: 'postgres', postgresUrl: POSTGRES_URL, postgresTable: `${schema}.sessions` };
        direct = (i) => DirectPostgresClient.connect(POSTGRES_URL, table, `c${i}`, VALUE);
      }
      const server = await startSessionserver(storage, options.cpuProfile ?? false);
      try {
        for (const count of CLIENT_COUNTS) {
          // Each client its own session id: no lock waits, only the cycle's own cost.
          const prefix = `cycle${count}x`;
          await run(store, 'sessionserver', await connectAll(count, (i) => LineCycleClient.connect(server.port, `${prefix}${i}`)), { server: server.pid, database: databasePid });
          if (direct) await run(store, 'direct', await connectAll(count, direct), { database: databasePid });
        }
      } finally {
        await server.stop();
        const profile = server.profilePath();
        if (profile) profiles.push(`${store}: ${formatProfileSummary(profile)}`);
        if (store === 'redis') {
          await redis?.stop();
          redis = null;
        }
      }
    }
  } finally {
    await redis?.stop();
    if (schema) await postgresAdmin(`DROP SCHEMA ${schema} CASCADE`).catch(() => {});
    for (const folder of folders) rmSync(folder, { recursive: true, force: true });
  }
  return [report(rows, notes), ...profiles].join('\n\n');
}

function report(rows: Row[], notes: string[]): string {
  const find = (store: StoreName, clients: number, target: Row['target']) => rows.find((r) => r.store === store && r.clients === clients && r.target === target);
  const table: string[][] = [['store', 'clients', 'target', 'cycles/s', 'p50 ms', 'p99 ms', 'errors', 'server µs/cycle', 'client µs/cycle', 'redis µs/cycle', 'vs direct']];
  for (const row of rows) {
    const { result } = row;
    let ratio = '';
    if (row.target === 'sessionserver') {
      // Stores with no direct line compare with Redis direct: the memory store is the framework's ceiling.
      const base = find(row.store === 'postgres' ? 'postgres' : 'redis', row.clients, 'direct');
      if (base) ratio = `${(result.perSecond / base.result.perSecond).toFixed(2)}x${row.store === 'redis' || row.store === 'postgres' ? '' : ' redis'}`;
    }
    const us = (value: number | null) => (value === null ? '' : value.toFixed(0));
    table.push([
      row.store,
      String(row.clients),
      row.target === 'direct' ? `direct ${row.store}` : 'sessionserver',
      Math.round(result.perSecond).toLocaleString('en-US'),
      result.p50.toFixed(2),
      result.p99.toFixed(2),
      String(result.errors),
      us(result.serverUs),
      us(result.clientUs),
      us(result.databaseUs),
      ratio,
    ]);
  }
  const widths = table[0]!.map((_, i) => Math.max(...table.map((r) => r[i]!.length)));
  const lines = table.map((r) => r.map((cell, i) => (i === 0 || i === 2 ? cell.padEnd(widths[i]!) : cell.padStart(widths[i]!))).join('  ').trimEnd());
  return [
    'session cycle: each client its own session, one request in flight: open <id> rw, put k <64 B>, get k, close.',
    'direct = the same cycle by a hand-written client on the database (Redis: SET NX PX, HGETALL, MULTI HSET+PEXPIRE, token-checked DEL;',
    'PostgreSQL: BEGIN, SELECT FOR UPDATE, UPDATE, COMMIT; one connection per client). µs/cycle = CPU time per cycle of that process.',
    'vs direct = sessionserver cycles/s / direct cycles/s (memory and filesystem: / Redis direct, the framework ceiling).',
    ...lines,
    ...notes.map((note) => `note: ${note}`),
  ].join('\n');
}

runWhenMain(import.meta.url, 'session cycle', ({ quick, cpuProfile }) => runSessionCycleBench({ quick, cpuProfile }));
