import { readFileSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { performance } from 'node:perf_hooks';
import { LineReplyParser, RespReplyParser, type ReplyParser } from './reply-parsers.js';
import { buildWorkload, type Dialect, type Workload } from './workload.js';
import { CLOCK_TICKS_PER_SECOND, processCpuMs } from './serial-line-client.js';

/**
 * A closed-loop load generator: `connections` sockets each keep exactly `depth`
 * requests in flight, sending one new request for every reply. Throughput and
 * latency are counted only inside the measuring window, after a warm-up.
 */
export interface LoadJob {
  host: string;
  port: number;
  dialect: Dialect;
  connections: number;
  depth: number;
  warmupMs: number;
  durationMs: number;
  /** Keys each connection cycles through (k0 … k<keySpace-1>): the size a session grows to. */
  keySpace: number;
  /** The server's process, to report how busy it was (from /proc); omitted: not reported. */
  serverPid?: number;
}

export interface LoadResult {
  /** Replies received inside the measuring window. */
  replies: number;
  /** The window's real length. */
  windowMs: number;
  opsPerSecond: number;
  p50Ms: number;
  p99Ms: number;
  /** Error replies seen at any time (warm-up included); anything but 0 means the numbers lie. */
  errors: number;
  /** Cores the server kept busy during the window (1 = one core flat out); null when unknown. */
  serverCpu: number | null;
  /** Cores the generator kept busy: near 1 means the generator, not the server, may be the limit. */
  generatorCpu: number;
  /** Replies per socket read at the generator: how much the server batched its answers. */
  repliesPerRead: number;
  /** Cores busy with anything else on the machine (other processes, some kernel work); null when unknown. */
  otherCpu: number | null;
}

/** Latency samples in ms, grown by doubling; sorted once at the end. */
class LatencySamples {
  private values = new Float64Array(1 << 16);
  private size = 0;

  add(ms: number): void {
    if (this.size === this.values.length) {
      const grown = new Float64Array(this.values.length * 2);
      grown.set(this.values);
      this.values = grown;
    }
    this.values[this.size++] = ms;
  }

  percentiles(...fractions: number[]): number[] {
    const sorted = this.values.subarray(0, this.size).sort();
    return fractions.map((fraction) => {
      if (sorted.length === 0) return Number.NaN;
      const rank = Math.min(sorted.length - 1, Math.max(0, Math.ceil(fraction * sorted.length) - 1));
      return sorted[rank]!;
    });
  }
}

/** What the connections of one run share: the clock window and the counters. */
class Run {
  recording = false;
  stopped = false;
  replies = 0;
  /** Socket reads that carried replies, inside the window. */
  reads = 0;
  readonly samples = new LatencySamples();
}

/** One client socket of the loop; replies arrive in request order, so send times are a FIFO. */
class LoopConnection {
  private readonly sentAt: Float64Array;
  private head = 0;
  private inFlight = 0;
  private position = 0;
  private greeted: boolean;

  constructor(
    private readonly socket: Socket,
    private readonly parser: ReplyParser,
    private readonly workload: Workload,
    private readonly depth: number,
    private readonly run: Run,
    private readonly onGreeted: () => void,
  ) {
    this.sentAt = new Float64Array(depth);
    this.greeted = workload.greeting === null;
    socket.on('data', (chunk: Buffer) => this.onData(chunk));
  }

  get errors(): number {
    return this.parser.errors;
  }

  greet(): void {
    if (this.workload.greeting) this.socket.write(this.workload.greeting);
    else this.onGreeted();
  }

  start(): void {
    this.send(this.depth, performance.now());
  }

  stop(): void {
    this.socket.destroy();
  }

  private onData(chunk: Buffer): void {
    const replies = this.parser.feed(chunk);
    if (replies === 0) return;
    if (!this.greeted) {
      // The greeting's reply comes alone: nothing else was sent yet.
      this.greeted = true;
      this.onGreeted();
      return;
    }
    const now = performance.now();
    const run = this.run;
    for (let i = 0; i < replies; i++) {
      if (run.recording) run.samples.add(now - this.sentAt[this.head]!);
      this.head = this.head + 1 === this.depth ? 0 : this.head + 1;
    }
    this.inFlight -= replies;
    if (run.recording) {
      run.replies += replies;
      run.reads++;
    }
    if (!run.stopped) this.send(replies, now);
  }

  /** Sends the next n requests of the cycle as one or two slices of the shared buffer. */
  private send(n: number, now: number): void {
    let slot = this.head + this.inFlight;
    for (let i = 0; i < n; i++, slot++) this.sentAt[slot % this.depth] = now;
    this.inFlight += n;
    const { bytes, offsets, count } = this.workload;
    const from = this.position;
    const to = from + n;
    if (to <= count) {
      this.socket.write(bytes.subarray(offsets[from]!, offsets[to]!));
      this.position = to === count ? 0 : to;
    } else {
      const wrapped = to - count;
      this.socket.write(Buffer.concat([bytes.subarray(offsets[from]!), bytes.subarray(0, offsets[wrapped]!)]));
      this.position = wrapped;
    }
  }
}

function openSocket(host: string, port: number): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host, port, noDelay: true });
    socket.once('connect', () => {
      socket.off('error', reject);
      socket.on('error', () => {});
      resolve(socket);
    });
    socket.once('error', reject);
  });
}

/** CPU time the whole machine has spent busy (all cores, idle and iowait excluded), in ms, from /proc/stat. */
function machineBusyMs(): number | null {
  try {
    const fields = readFileSync('/proc/stat', 'utf8').split('\n', 1)[0]!.trim().split(/\s+/).slice(1, 9).map(Number);
    const [user, nice, system, , , irq, softirq, steal] = fields as [number, number, number, number, number, number, number, number];
    return ((user + nice + system + irq + softirq + steal) * 1000) / CLOCK_TICKS_PER_SECOND;
  } catch {
    return null;
  }
}

function ownCpuMs(): number {
  const { user, system } = process.cpuUsage();
  return (user + system) / 1000;
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

export async function runLoad(job: LoadJob): Promise<LoadResult> {
  const workload = buildWorkload(job.dialect, job.keySpace);
  if (job.depth > workload.count) throw new Error('pipeline depth larger than the request cycle');
  const run = new Run();
  const sockets = await Promise.all(Array.from({ length: job.connections }, () => openSocket(job.host, job.port)));
  let greeted = 0;
  let allGreeted!: () => void;
  const greetings = new Promise<void>((resolve) => (allGreeted = resolve));
  const onGreeted = () => {
    if (++greeted === job.connections) allGreeted();
  };
  const connections = sockets.map((socket) => {
    const parser = job.dialect === 'redis' ? new RespReplyParser() : new LineReplyParser();
    return new LoopConnection(socket, parser, workload, job.depth, run, onGreeted);
  });
  try {
    for (const connection of connections) connection.greet();
    await greetings;
    if (connections.some((connection) => connection.errors > 0)) throw new Error('the greeting (`new`) was refused');
    for (const connection of connections) connection.start();
    await sleep(job.warmupMs);
    const serverCpuStart = job.serverPid === undefined ? null : processCpuMs(job.serverPid);
    const ownCpuStart = ownCpuMs();
    const machineStart = machineBusyMs();
    run.recording = true;
    const windowStart = performance.now();
    await sleep(job.durationMs);
    run.recording = false;
    const windowMs = performance.now() - windowStart;
    run.stopped = true;
    const serverCpuEnd = job.serverPid === undefined ? null : processCpuMs(job.serverPid);
    const generatorCpu = (ownCpuMs() - ownCpuStart) / windowMs;
    const machineEnd = machineBusyMs();
    const serverCpu = serverCpuStart === null || serverCpuEnd === null ? null : (serverCpuEnd - serverCpuStart) / windowMs;
    const machineCpu = machineStart === null || machineEnd === null ? null : (machineEnd - machineStart) / windowMs;
    const [p50Ms, p99Ms] = run.samples.percentiles(0.5, 0.99);
    return {
      replies: run.replies,
      windowMs,
      opsPerSecond: (run.replies / windowMs) * 1000,
      p50Ms: p50Ms!,
      p99Ms: p99Ms!,
      errors: connections.reduce((sum, connection) => sum + connection.errors, 0),
      serverCpu,
      generatorCpu,
      repliesPerRead: run.reads === 0 ? 0 : run.replies / run.reads,
      otherCpu: machineCpu === null || serverCpu === null ? null : Math.max(0, machineCpu - serverCpu - generatorCpu),
    };
  } finally {
    for (const connection of connections) connection.stop();
  }
}
