/**
 * `npm run bench [-- --quick] [-- --only=50x16,memory,storage,latency,metrics,cycle,filesystem] [-- --cpu-prof] [-- --targets=sessionserver,bare-node] [-- --keys=1000]`
 * (or BENCH_QUICK=1, BENCH_ONLY=…, BENCH_CPU_PROF=1, BENCH_TARGETS=…, BENCH_KEYS=…). How to read the
 * output: bench/README.md. Each server and the load generator run in their own
 * processes; this one only orchestrates and prints.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, statSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import { killAllChildren, killChildrenOnExit, REPO_ROOT } from './children.js';
import { measureConnectionMemory, type MemoryResult } from './memory.js';
import { runMetricsOverheadBench } from './metrics-overhead.js';
import { formatProfileSummary } from './profile-summary.js';
import { RemoteLoadGenerator } from './remote-load-generator.js';
import { memoryTable, noiseWarning, ratioTable, throughputTable, type Scenario, type ThroughputResults } from './report.js';
import { runLatencyBench } from './latency.js';
import { runStorageBench } from './storage.js';
import { runSessionCycleBench } from './session-cycle.js';
import { runFilesystemBench } from './filesystem-sweep.js';
import { redisServerInstalled, startBareServer, startRedisServer, startSessionserver, type Target, type TargetName } from './targets.js';
import { DEFAULT_KEY_SPACE, DEFAULT_VALUE_BYTES } from './workload.js';

const SCENARIOS: Scenario[] = [
  { name: '1x1', connections: 1, depth: 1 },
  { name: '50x1', connections: 50, depth: 1 },
  { name: '50x16', connections: 50, depth: 16 },
];
const TARGET_ORDER: TargetName[] = ['sessionserver', 'redis-server', 'bare-node'];
const MEMORY_CONNECTIONS = 10_000;

interface Options {
  quick: boolean;
  cpuProfile: boolean;
  scenarios: Scenario[];
  memory: boolean;
  /** The storage drivers (memory, Redis, PostgreSQL) under a session workload: bench/storage.ts. */
  storage: boolean;
  /** Lock hand-off, wake-up after close and reload latencies (bench/latency.ts): reported, not asserted. */
  latency: boolean;
  /** sessionserver with and without the metrics plugin at 50x16 (bench/metrics-overhead.ts). */
  metrics: boolean;
  /** The session cycle (open rw, put, get, close) per store and directly on Redis and PostgreSQL (bench/session-cycle.ts). */
  cycle: boolean;
  /** The filesystem store: new/put/close cycles/s and the gc sweep at 100k sessions (bench/filesystem-sweep.ts). */
  filesystem: boolean;
  targets: TargetName[];
  warmupMs: number;
  durationMs: number;
  keySpace: number;
}

function readOptions(argv: string[], env: NodeJS.ProcessEnv): Options {
  const flag = (name: string) => argv.includes(`--${name}`) || ['1', 'true', 'yes'].includes(env[`BENCH_${name.toUpperCase().replace(/-/g, '_')}`] ?? '');
  const value = (name: string) => argv.find((arg) => arg.startsWith(`--${name}=`))?.slice(name.length + 3) ?? env[`BENCH_${name.toUpperCase()}`];
  const known = ['--quick', '--cpu-prof'];
  for (const arg of argv) {
    if (!known.includes(arg) && !/^--(only|targets|keys)=/.test(arg)) throw new Error(`unknown option ${arg}`);
  }
  const keySpace = Number(value('keys') ?? DEFAULT_KEY_SPACE);
  if (!Number.isInteger(keySpace) || keySpace < 8 || keySpace > 100_000) throw new Error('--keys: a whole number from 8 to 100000');
  const quick = flag('quick');
  const only = value('only')?.split(',').map((s) => s.trim()).filter(Boolean);
  for (const name of only ?? []) {
    if (name !== 'memory' && name !== 'storage' && name !== 'latency' && name !== 'metrics' && name !== 'cycle' && name !== 'filesystem' && !SCENARIOS.some((s) => s.name === name)) {
      throw new Error(`--only: unknown scenario ${name} (known: ${SCENARIOS.map((s) => s.name).join(', ')}, memory, storage, latency, metrics, cycle, filesystem)`);
    }
  }
  const targets = (value('targets')?.split(',').map((s) => s.trim()) ?? TARGET_ORDER) as TargetName[];
  for (const name of targets) {
    if (!TARGET_ORDER.includes(name)) throw new Error(`--targets: unknown target ${name} (known: ${TARGET_ORDER.join(', ')})`);
  }
  return {
    quick,
    cpuProfile: flag('cpu-prof'),
    scenarios: only ? SCENARIOS.filter((s) => only.includes(s.name)) : SCENARIOS,
    memory: only ? only.includes('memory') : true,
    storage: only ? only.includes('storage') : true,
    latency: only ? only.includes('latency') : true,
    metrics: only ? only.includes('metrics') : true,
    cycle: only ? only.includes('cycle') : true,
    filesystem: only ? only.includes('filesystem') : true,
    targets: TARGET_ORDER.filter((name) => targets.includes(name)),
    warmupMs: quick ? 300 : 1000,
    durationMs: quick ? 1500 : 4000,
    keySpace,
  };
}

/** dist/ is what the sessionserver child runs: build it when missing, warn when older than lib/. */
function ensureBuilt(): void {
  const builtEntry = join(REPO_ROOT, 'dist', 'index.js');
  if (!existsSync(builtEntry)) {
    console.error('bench: dist/ is missing, running npm run build');
    const build = spawnSync('npm', ['run', 'build'], { cwd: REPO_ROOT, stdio: 'inherit' });
    if (build.status !== 0 || !existsSync(builtEntry)) throw new Error('npm run build failed; fix the build, then run the bench again');
    return;
  }
  const newestSource = newestMtime(join(REPO_ROOT, 'lib'));
  if (newestSource > statSync(builtEntry).mtimeMs + 1000) {
    console.error('bench: note: lib/ has changes newer than dist/; run `npm run build` to bench the current code');
  }
}

function newestMtime(dir: string): number {
  let newest = 0;
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    newest = Math.max(newest, entry.isDirectory() ? newestMtime(path) : statSync(path).mtimeMs);
  }
  return newest;
}

function redisVersion(): string {
  const output = spawnSync('redis-server', ['--version'], { encoding: 'utf8' }).stdout ?? '';
  return /v=(\S+)/.exec(output)?.[1] ?? 'unknown';
}

const pause = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

async function startTarget(name: TargetName, options: { exposeGc?: boolean; cpuProfile?: boolean }): Promise<Target> {
  if (name === 'sessionserver') return startSessionserver(options);
  if (name === 'bare-node') return startBareServer(options);
  return startRedisServer();
}

async function measureThroughput(options: Options, targetNames: TargetName[], generator: RemoteLoadGenerator): Promise<{ results: ThroughputResults; profilePath?: string }> {
  const results: ThroughputResults = new Map();
  const targets: Target[] = [];
  try {
    for (const name of targetNames) targets.push(await startTarget(name, { cpuProfile: options.cpuProfile && name === 'sessionserver' }));
    // Scenario by scenario, all targets back to back: background noise hits them alike.
    for (const scenario of options.scenarios) {
      const byTarget = new Map<TargetName, Awaited<ReturnType<RemoteLoadGenerator['run']>>>();
      results.set(scenario.name, byTarget);
      for (const target of targets) {
        const result = await generator.run({
          host: target.host,
          port: target.port,
          dialect: target.dialect,
          connections: scenario.connections,
          depth: scenario.depth,
          warmupMs: options.warmupMs,
          durationMs: options.durationMs,
          keySpace: options.keySpace,
          serverPid: target.pid,
        });
        byTarget.set(target.name, result);
        console.error(`  ${scenario.name.padEnd(6)} ${target.name.padEnd(14)} ${Math.round(result.opsPerSecond).toLocaleString('en-US').padStart(10)} ops/s`);
        await pause(300);
      }
    }
  } finally {
    for (const target of targets) await target.stop();
  }
  return { results, profilePath: targets.find((t) => t.name === 'sessionserver')?.profilePath?.() };
}

async function measureMemory(options: Options, targetNames: TargetName[], generator: RemoteLoadGenerator): Promise<MemoryResult[]> {
  const results: MemoryResult[] = [];
  for (const name of targetNames) {
    const target = await startTarget(name, { exposeGc: true });
    try {
      // Warm up (JIT, pools) so the baseline already holds what any busy server holds.
      await generator.run({ host: target.host, port: target.port, dialect: target.dialect, connections: 10, depth: 4, warmupMs: 0, durationMs: options.quick ? 300 : 1000, keySpace: options.keySpace });
      const result = await measureConnectionMemory(target, MEMORY_CONNECTIONS);
      results.push(result);
      console.error(`  memory ${name.padEnd(14)} ${((result.afterAllKiB - result.baselineKiB) / result.connections).toFixed(1)} KiB/connection`);
    } finally {
      await target.stop();
    }
  }
  return results;
}

async function main(): Promise<void> {
  const options = readOptions(process.argv.slice(2), process.env);
  killChildrenOnExit();
  const watchdog = setTimeout(() => {
    console.error('bench: took longer than 8 minutes, giving up');
    killAllChildren();
    process.exit(1);
  }, 480_000);
  ensureBuilt();

  const haveRedis = redisServerInstalled();
  const targetNames = options.targets.filter((name) => name !== 'redis-server' || haveRedis);
  console.log(
    `sessionserver bench: Node ${process.version}, ${availableParallelism()} cores, ` +
      `redis-server ${haveRedis ? redisVersion() : 'not installed (skipped)'}; ` +
      `each run: ${options.warmupMs / 1000} s warm-up, ${options.durationMs / 1000} s measured${options.cpuProfile ? '; sessionserver under --cpu-prof (slower)' : ''}`,
  );
  const generator = RemoteLoadGenerator.start();
  try {
    let throughput: { results: ThroughputResults; profilePath?: string } | null = null;
    if (options.scenarios.length > 0) throughput = await measureThroughput(options, targetNames, generator);
    const memory = options.memory ? await measureMemory(options, targetNames, generator) : [];
    const storage = options.storage ? await runStorageBench({ quick: options.quick }) : null;
    const latency = options.latency ? await runLatencyBench({ quick: options.quick }) : null;
    const metricsOverhead = options.metrics ? await runMetricsOverheadBench(options, generator) : null;
    const cycle = options.cycle ? await runSessionCycleBench({ quick: options.quick, cpuProfile: options.cpuProfile }) : null;
    const filesystem = options.filesystem ? await runFilesystemBench({ quick: options.quick }) : null;

    if (throughput) {
      console.log(`\nthroughput: N connections x pipeline depth D; put/get alternating over ${options.keySpace} keys per connection, ${DEFAULT_VALUE_BYTES}-byte values`);
      console.log(throughputTable(options.scenarios, targetNames, throughput.results));
      console.log('\nratios (ops/s of sessionserver / ops/s of the other)');
      console.log(ratioTable(options.scenarios, throughput.results));
      const warning = noiseWarning(throughput.results);
      if (warning) console.log(warning);
    }
    if (memory.length > 0) {
      console.log(`\nmemory: RSS growth for ${MEMORY_CONNECTIONS.toLocaleString('en-US')} clients, half idle (one ping), half holding a session with one small value`);
      console.log(memoryTable(memory));
    }
    if (storage) console.log(`\n${storage}`);
    if (latency) console.log(`\n${latency}`);
    if (metricsOverhead) console.log(`\n${metricsOverhead}`);
    if (cycle) console.log(`\n${cycle}`);
    if (filesystem) console.log(`\n${filesystem}`);
    if (throughput?.profilePath) {
      console.log(`\n${formatProfileSummary(throughput.profilePath)}`);
    }
  } finally {
    await generator.stop();
    clearTimeout(watchdog);
    killAllChildren();
  }
}

main().catch((error: unknown) => {
  console.error(`bench failed: ${error instanceof Error ? error.stack ?? error.message : String(error)}`);
  killAllChildren();
  process.exit(1);
});
