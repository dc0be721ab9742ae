/**
 * Latencies that tests only prove by order of events, measured here and reported (never
 * asserted): part of `npm run bench`, alone with `--only=latency`. Everything runs in this
 * process on the built package; Redis is a private redis-server, PostgreSQL the machine's
 * (BENCH_POSTGRES_URL) in a schema of its own, dropped afterwards.
 *
 * - lock hand-off: two store instances (as two server processes would have) pass one
 *   session's writer lock back and forth, the other side already waiting; from the holder's
 *   release() to the waiter holding the lock.
 * - wake-up after close: two SessionServers on one store; a client of one holds a session
 *   rw, a client of the other waits in `open rw`; from sending `close` to the waiter's `ok`.
 * - reload: a command file saved under the hot-reload plugin (`serve --watch`); from the
 *   save to the reload event, and to the first request that answers with the new version.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { LockManager, ReloadEvent, SessionClient as Client, SessionLock, SessionServer, SessionServerConfig } from 'sessionserver';
import { loadBuiltPackage } from './built-package.js';
import { POSTGRES_URL, postgresAdmin, postgresReachable } from './storage.js';
import { redisServerInstalled, startRedisServer } from './targets.js';

const HOST = '127.0.0.1';
// A queued waiter on a shared store subscribes, then asks the store once: let that settle
// before the release, so what is measured is the wake-up, not the first ask.
const SETTLE_MS = 5;

export interface LatencyBenchOptions {
  quick: boolean;
}

interface Row {
  measure: string;
  where: string;
  samples: number[] | string;
}

const pause = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Resolves once `check` holds (polled); these waits are the bench's, not what it measures. */
async function until(check: () => boolean, what: string, timeoutMs = 10_000): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  while (!check()) {
    if (performance.now() > deadline) throw new Error(`latency bench: no ${what} within ${timeoutMs} ms`);
    await new Promise((resolve) => setImmediate(resolve));
  }
}

/** Hand-offs of one session's lock between `a` and `b`, each time with the other already queued. */
async function lockHandOff(a: LockManager, b: LockManager, rounds: number): Promise<number[]> {
  const latencies: number[] = [];
  let [holder, waiter] = [a, b];
  let lock: SessionLock = await holder.acquire('hand-off', 5000);
  for (let i = 0; i < rounds; i++) {
    const queued = waiter.waits + 1;
    let acquiredAt = 0;
    const next = waiter.acquire('hand-off', 5000).then((taken) => {
      acquiredAt = performance.now();
      return taken;
    });
    await until(() => waiter.waits >= queued, 'queued waiter');
    await pause(SETTLE_MS);
    const releasedAt = performance.now();
    await lock.release();
    lock = await next;
    latencies.push(acquiredAt - releasedAt);
    [holder, waiter] = [waiter, holder];
  }
  await lock.release();
  return latencies;
}

/**
 * `close` sent by the holder to `ok` received by the waiter, which waited in `open rw`: on
 * one server (`instances` 1), or with holder and waiter on two servers sharing the store.
 */
async function wakeUpAfterClose(config: SessionServerConfig, instances: 1 | 2, rounds: number): Promise<number[]> {
  const { SessionServer, SessionClient } = await loadBuiltPackage();
  const servers: SessionServer[] = [];
  const clients: Client[] = [];
  try {
    for (let i = 0; i < instances; i++) {
      const server = new SessionServer({ ...config, logLevel: 'silent', gcInterval: 0 });
      servers.push(server);
      await server.listen({ port: 0, host: HOST });
    }
    for (let i = 0; i < 2; i++) clients.push(await SessionClient.connect({ host: HOST, port: servers[i % instances]!.address()!.port }));
    const latencies: number[] = [];
    let [holder, waiter] = [0, 1];
    await clients[holder]!.open('wake-up', 'rw');
    for (let i = 0; i < rounds; i++) {
      const locks = servers[waiter % instances]!.sessions.locks;
      const queued = locks.waits + 1;
      let answeredAt = 0;
      const opened = clients[waiter]!.open('wake-up', 'rw').then(() => (answeredAt = performance.now()));
      await until(() => locks.waits >= queued, 'queued writer');
      await pause(SETTLE_MS);
      const closedAt = performance.now();
      await clients[holder]!.close();
      await opened;
      latencies.push(answeredAt - closedAt);
      [holder, waiter] = [waiter, holder];
    }
    await clients[holder]!.close();
    return latencies;
  } finally {
    for (const client of clients) client.disconnect();
    for (const server of servers) await server.close();
  }
}

/** Saves of a command file under hot reload: to the reload event, and to the first request that sees it. */
async function reload(rounds: number): Promise<{ toEvent: number[]; toVisible: number[] }> {
  const { SessionServer, SessionClient } = await loadBuiltPackage();
  const dir = await mkdtemp(join(tmpdir(), 'sessionserver-bench-'));
  const file = join(dir, 'version.mjs');
  await writeFile(file, 'export default () => "v0";\n');
  const server = new SessionServer({ storage: 'memory', logLevel: 'silent', commandsDir: dir, plugins: ['hot-reload'] });
  const events: ReloadEvent[] = [];
  server.hooks.reload.tap('latency-bench', (event) => void events.push(event));
  const { port } = await server.listen({ port: 0, host: HOST });
  const client = await SessionClient.connect({ host: HOST, port });
  const toEvent: number[] = [];
  const toVisible: number[] = [];
  try {
    for (let i = 1; i <= rounds; i++) {
      const seen = events.length;
      const savedAt = performance.now();
      await writeFile(file, `export default () => "v${i}";\n`);
      await until(() => events.length > seen, 'reload event');
      toEvent.push(performance.now() - savedAt);
      while ((await client.request('version')) !== `v${i}`) await pause(1);
      toVisible.push(performance.now() - savedAt);
    }
  } finally {
    client.disconnect();
    await server.close();
    await rm(dir, { recursive: true, force: true });
  }
  return { toEvent, toVisible };
}

function percentile(samples: number[], p: number): number {
  const sorted = [...samples].sort((x, y) => x - y);
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!;
}

function report(rows: Row[]): string {
  const lines = [['measure', 'where', 'p50 ms', 'p99 ms', 'max ms', 'samples']];
  for (const { measure, where, samples } of rows) {
    if (typeof samples === 'string') lines.push([measure, where, samples, '', '', '']);
    else lines.push([measure, where, percentile(samples, 50).toFixed(2), percentile(samples, 99).toFixed(2), Math.max(...samples).toFixed(2), String(samples.length)]);
  }
  const widths = lines[0]!.map((_, column) => Math.max(...lines.map((line) => line[column]!.length)));
  const table = lines.map((line) => line.map((cell, column) => (column < 2 ? cell.padEnd(widths[column]!) : cell.padStart(widths[column]!))).join('  ').trimEnd());
  return ['latency: reported, not asserted (the tests prove these by order of events)', ...table].join('\n');
}

/** Runs every measurement; returns the report (progress goes to stderr). */
export async function runLatencyBench(options: LatencyBenchOptions): Promise<string> {
  const { createStore, LockTable } = await loadBuiltPackage();
  const handOffRounds = options.quick ? 100 : 300;
  const wakeRounds = options.quick ? 50 : 200;
  const reloadRounds = options.quick ? 5 : 20;
  const rows: Row[] = [];
  const redis = redisServerInstalled() ? await startRedisServer() : null;
  const postgresProblem = await postgresReachable();
  const schema = `bench_latency_${process.pid}`;
  if (!postgresProblem) await postgresAdmin(`CREATE SCHEMA ${schema}`);
  const shared: Array<[string, SessionServerConfig | string]> = [
    ['redis', redis ? { storage: 'redis', redisUrl: `redis://${HOST}:${redis.port}`, redisPrefix: 'latency:' } : 'skipped: redis-server is not installed'],
    ['postgres', postgresProblem ? `skipped: PostgreSQL unreachable (${postgresProblem})` : { storage: 'postgres', postgresUrl: POSTGRES_URL, postgresTable: `${schema}.sessions` }],
  ];
  try {
    console.error('  latency: lock hand-off');
    const table = new LockTable();
    rows.push({ measure: 'lock hand-off', where: 'memory (one process)', samples: await lockHandOff(table, table, handOffRounds) });
    for (const [name, config] of shared) {
      if (typeof config === 'string') {
        rows.push({ measure: 'lock hand-off', where: name, samples: config });
        continue;
      }
      const a = createStore(config);
      const b = createStore(config);
      await Promise.all([a.open(), b.open()]);
      try {
        await lockHandOff(a.locks!, b.locks!, 20); // warm up connections and script caches
        rows.push({ measure: 'lock hand-off', where: `${name}, two instances`, samples: await lockHandOff(a.locks!, b.locks!, handOffRounds) });
      } finally {
        await Promise.all([a.close(), b.close()]);
      }
    }
    console.error('  latency: wake-up after close');
    rows.push({ measure: 'wake-up after close', where: 'memory, one server', samples: await wakeUpAfterClose({ storage: 'memory' }, 1, wakeRounds) });
    for (const [name, config] of shared) {
      rows.push({ measure: 'wake-up after close', where: typeof config === 'string' ? name : `${name}, two servers`, samples: typeof config === 'string' ? config : await wakeUpAfterClose(config, 2, wakeRounds) });
    }
    console.error('  latency: reload');
    const reloads = await reload(reloadRounds);
    rows.push({ measure: 'reload: save to event', where: 'command file, --watch', samples: reloads.toEvent });
    rows.push({ measure: 'reload: save to visible', where: 'command file, --watch', samples: reloads.toVisible });
  } finally {
    await redis?.stop();
    if (!postgresProblem) await postgresAdmin(`DROP SCHEMA ${schema} CASCADE`).catch(() => {});
  }
  return report(rows);
}
