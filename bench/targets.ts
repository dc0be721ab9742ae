import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdirSync, readdirSync } from 'node:fs';
import { connect, createServer, type AddressInfo } from 'node:net';
import { join } from 'node:path';
import { forkBenchScript, nextMessage, REPO_ROOT, stopWithin, track } from './children.js';
import type { ServerControlMessage, ServerReportMessage } from './messages.js';
import type { Dialect } from './workload.js';

/** A server under test, each in its own process on a loopback port. */
export interface Target {
  readonly name: TargetName;
  readonly dialect: Dialect;
  readonly host: string;
  readonly port: number;
  readonly pid: number;
  /** Under --cpu-prof: the main thread's profile, once the target has stopped. */
  profilePath?(): string | undefined;
  /** Makes RSS meaningful (Node children garbage-collect); heapUsed when the target is Node. */
  settle(): Promise<{ heapUsedKiB?: number }>;
  stop(): Promise<void>;
}

export type TargetName = 'sessionserver' | 'redis-server' | 'bare-node';

const HOST = '127.0.0.1';
export const PROFILE_DIR = join(REPO_ROOT, '.bench');

export interface NodeTargetOptions {
  /** Run with --expose-gc so `settle` can collect garbage before RSS is read. */
  exposeGc?: boolean;
  /** Run with --cpu-prof, writing the profile to .bench/ when the child stops. */
  cpuProfile?: boolean;
}

/** sessionserver (built package, memory store) in a child process. */
export function startSessionserver(options: NodeTargetOptions = {}): Promise<Target> {
  return startNodeTarget('sessionserver', 'sessionserver', 'serve-sessionserver.ts', options);
}

/** The bare `ok`-to-every-line Node server in a child process. */
export function startBareServer(options: NodeTargetOptions = {}): Promise<Target> {
  return startNodeTarget('bare-node', 'line', 'bare-server.ts', options);
}

async function startNodeTarget(name: TargetName, dialect: Dialect, script: string, options: NodeTargetOptions): Promise<Target> {
  const nodeOptions: string[] = [];
  if (options.exposeGc) nodeOptions.push('--expose-gc');
  let profileDir: string | undefined;
  if (options.cpuProfile) {
    // A folder per run: tsx's loader thread writes a profile of its own next to the main thread's.
    profileDir = join(PROFILE_DIR, `${name}-${Date.now()}`);
    mkdirSync(profileDir, { recursive: true });
    nodeOptions.push('--cpu-prof', `--cpu-prof-dir=${profileDir}`, '--cpu-prof-interval=250');
  }
  const child = forkBenchScript(script, nodeOptions);
  const isReport = (m: ServerReportMessage | undefined): m is ServerReportMessage => typeof m?.type === 'string';
  const listening = await nextMessage(child, (m): m is Extract<ServerReportMessage, { type: 'listening' }> => isReport(m) && m.type === 'listening', 15_000, name);
  const control = (message: ServerControlMessage) => child.send(message);
  return {
    name,
    dialect,
    host: HOST,
    port: listening.port,
    pid: child.pid!,
    ...(profileDir ? { profilePath: () => mainThreadProfile(profileDir, child.pid!) } : {}),
    async settle() {
      const settled = nextMessage(child, (m): m is Extract<ServerReportMessage, { type: 'settled' }> => isReport(m) && m.type === 'settled', 10_000, name);
      control({ type: 'settle' });
      const { heapUsedKiB } = await settled;
      return { heapUsedKiB };
    },
    // A clean exit, so that --cpu-prof writes its profile.
    stop: () => stopWithin(child, 10_000, () => control({ type: 'stop' })),
  };
}

/** Node names profiles CPU.<date>.<time>.<pid>.<thread>.<seq>.cpuprofile; the main thread is 0. */
function mainThreadProfile(dir: string, pid: number): string | undefined {
  const name = readdirSync(dir).find((file) => file.startsWith('CPU.') && file.includes(`.${pid}.0.`));
  return name === undefined ? undefined : join(dir, name);
}

export function redisServerInstalled(): boolean {
  return !spawnSync('redis-server', ['--version'], { stdio: 'ignore' }).error;
}

/** A private redis-server on a free port: no persistence, loopback only. */
export async function startRedisServer(): Promise<Target> {
  const port = await freePort();
  const child = track(
    spawn(
      'redis-server',
      ['--port', String(port), '--save', '', '--appendonly', 'no', '--bind', HOST, '--maxclients', '12000', '--loglevel', 'warning'],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    ),
  );
  let output = '';
  const keep = (chunk: Buffer) => (output = (output + chunk.toString()).slice(-2000));
  child.stdout!.on('data', keep);
  child.stderr!.on('data', keep);
  try {
    await waitForRedis(child, port, 10_000);
  } catch (error) {
    child.kill('SIGKILL');
    throw new Error(`redis-server did not start: ${(error as Error).message}\n${output}`);
  }
  return {
    name: 'redis-server',
    dialect: 'redis',
    host: HOST,
    port,
    pid: child.pid!,
    settle: async () => ({}),
    stop: () => stopWithin(child, 5000, () => child.kill('SIGTERM')),
  };
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const probe = createServer();
    probe.once('error', reject);
    probe.listen(0, HOST, () => {
      const { port } = probe.address() as AddressInfo;
      probe.close(() => resolve(port));
    });
  });
}

async function waitForRedis(child: ChildProcess, port: number, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (child.exitCode !== null) throw new Error(`exited with code ${child.exitCode}`);
    if (await answersPing(port)) return;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  throw new Error(`no PONG within ${timeoutMs} ms`);
}

function answersPing(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect(port, HOST);
    const done = (ok: boolean) => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(500, () => done(false));
    socket.once('error', () => done(false));
    socket.once('connect', () => socket.write('PING\r\n'));
    socket.once('data', (chunk: Buffer) => done(chunk.toString().startsWith('+PONG')));
  });
}
