import { readFile } from 'node:fs/promises';
import { connect, type Socket } from 'node:net';
import type { Target, TargetName } from './targets.js';

/**
 * Memory per client: read the server's RSS after a warm-up and a settle (forced GC for
 * Node targets), open `connections` clients — the first half idle (one `ping`), the
 * second half each holding a session with one small value — settle again, read again.
 * Clients are opened in batches so the listen backlog never overflows.
 */
export interface MemoryResult {
  target: TargetName;
  connections: number;
  withSession: number;
  baselineKiB: number;
  afterIdleKiB: number;
  afterAllKiB: number;
  /** Node targets: JS heap used at the three points. */
  heapKiB: [number, number, number] | null;
}

export const perConnectionKiB = (r: MemoryResult) => (r.afterAllKiB - r.baselineKiB) / r.connections;
export const idlePerConnectionKiB = (r: MemoryResult) => (r.afterIdleKiB - r.baselineKiB) / (r.connections - r.withSession);
export const sessionPerConnectionKiB = (r: MemoryResult) => (r.afterAllKiB - r.afterIdleKiB) / r.withSession;

const BATCH = 250;
const SETTLE_MS = 1500;

/** What each kind of client says, per dialect; every line gets exactly one one-line reply. */
function clientScript(target: Target, index: number): { idle: string[]; session: string[] } {
  if (target.dialect === 'redis') return { idle: ['PING'], session: ['PING', `SET session:${index} user_id=12345`] };
  return { idle: ['ping'], session: ['ping', 'new', 'put user_id 12345'] };
}

export async function measureConnectionMemory(target: Target, connections: number): Promise<MemoryResult> {
  const withSession = Math.floor(connections / 2);
  const idle = connections - withSession;
  const sockets: Socket[] = [];
  try {
    const baseline = await settledUsage(target);
    await openClients(target, 0, idle, 'idle', sockets);
    const afterIdle = await settledUsage(target);
    await openClients(target, idle, withSession, 'session', sockets);
    const afterAll = await settledUsage(target);
    const heaps = [baseline.heapUsedKiB, afterIdle.heapUsedKiB, afterAll.heapUsedKiB];
    return {
      target: target.name,
      connections,
      withSession,
      baselineKiB: baseline.rssKiB,
      afterIdleKiB: afterIdle.rssKiB,
      afterAllKiB: afterAll.rssKiB,
      heapKiB: heaps.every((kib) => kib !== undefined) ? (heaps as [number, number, number]) : null,
    };
  } finally {
    for (const socket of sockets) socket.destroy();
  }
}

async function settledUsage(target: Target): Promise<{ rssKiB: number; heapUsedKiB?: number }> {
  await new Promise((resolve) => setTimeout(resolve, SETTLE_MS));
  const { heapUsedKiB } = await target.settle();
  return { rssKiB: await readRssKiB(target.pid), heapUsedKiB };
}

/** VmRSS of a process, in KiB, from /proc. */
export async function readRssKiB(pid: number): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8');
  const match = /^VmRSS:\s+(\d+)\s+kB$/m.exec(status);
  if (!match) throw new Error(`no VmRSS for pid ${pid}`);
  return Number(match[1]);
}

async function openClients(target: Target, first: number, count: number, kind: 'idle' | 'session', sockets: Socket[]): Promise<void> {
  for (let start = 0; start < count; start += BATCH) {
    const batch = Array.from({ length: Math.min(BATCH, count - start) }, (_, i) => first + start + i);
    const opened = await Promise.all(batch.map((index) => openClient(target, clientScript(target, index)[kind])));
    sockets.push(...opened);
  }
}

/** Connects, sends the lines pipelined, waits for one reply each; any failure reply throws. */
function openClient(target: Target, lines: string[]): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: target.host, port: target.port });
    let received = '';
    let replies = 0;
    const timer = setTimeout(() => fail(new Error(`${target.name}: no reply within 10 s`)), 10_000);
    function fail(error: Error): void {
      clearTimeout(timer);
      socket.destroy();
      reject(error);
    }
    socket.once('error', fail);
    socket.once('connect', () => socket.write(lines.map((line) => `${line}\r\n`).join('')));
    socket.on('data', function onData(chunk: Buffer) {
      received += chunk.toString('latin1');
      replies = received.split('\n').length - 1;
      if (replies < lines.length) return;
      clearTimeout(timer);
      socket.off('data', onData);
      socket.off('error', fail);
      socket.on('error', () => {});
      const refused = received.split('\r\n').find((reply) => reply.startsWith('err') || reply.startsWith('-'));
      if (refused !== undefined) {
        socket.destroy();
        reject(new Error(`${target.name} refused a client: ${refused}`));
      } else {
        resolve(socket);
      }
    });
  });
}
