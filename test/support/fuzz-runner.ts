import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SessionServer, type SessionServerConfig } from '../../lib/index.js';
import { FIXED_IDS, cutInto, renderLine, type Step } from './fuzz-program.js';
import { captureLogger } from './log-capture.js';
import { ProtocolModel } from './protocol-model.js';
import { RawClient } from './raw-client.js';

/** Small limits, so that over-long lines, unknown-command streaks and lock timeouts happen often. */
export const FUZZ_LIMITS = { maxLineLength: 4096, maxUnknownCommands: 3, lockTimeout: 20 } as const;
/** How long a reply may take before the run fails as "no reply" (a liveness bound, not a timing assertion). */
const REPLY_TIMEOUT_MS = 3000;
const LF = Buffer.from('\n');

/** Every command word the server routes (read from its registry, so new commands are never sent as junk). */
export function commandWords(): Set<string> {
  const server = new SessionServer({ storage: 'memory', logLevel: 'silent' });
  return new Set(server.commands.list().map((entry) => entry.name));
}

interface Live {
  client: RawClient;
  /** The model's connection id. */
  modelId: number;
  /** How the server names the client, captured while the socket is open. */
  address: string;
  /** The end of a line held back for the next step, and the line when its reply is still due then. */
  held: { rest: Buffer; line: Buffer | null } | null;
}

/**
 * Runs one random program against a fresh server and its model, step by step, and then
 * checks the end state: every connection still answers, every stored session reads back
 * as the model has it, no lock or hold is left. Throws with a transcript on any disagreement.
 */
export async function runProgram(program: readonly Step[], storage: 'memory' | 'filesystem'): Promise<void> {
  const savePath = storage === 'filesystem' ? await mkdtemp(join(tmpdir(), 'sessionserver-fuzz-')) : undefined;
  const log = captureLogger('warn');
  const config: SessionServerConfig = { logger: log.logger, storage, gcInterval: 0, storageTimeout: 30_000, ...FUZZ_LIMITS, ...(savePath ? { savePath } : {}) };
  const server = new SessionServer(config);
  const { port } = await server.listen({ port: 0, host: '127.0.0.1' });
  const run = new Run(server, port, log.text, storage);
  try {
    for (const [index, step] of program.entries()) await run.step(index, step);
    await run.finish();
  } catch (error) {
    throw new Error(`${(error as Error).message}\n${run.report()}`, { cause: error });
  } finally {
    run.destroyAll();
    await server.close();
    if (savePath) await rm(savePath, { recursive: true, force: true });
  }
}

class Run {
  readonly model: ProtocolModel;
  private readonly live = new Map<number, Live>();
  private readonly transcript: string[] = [];
  private readonly departed = new Set<string>();
  private readonly departures = new Map<string, () => void>();

  constructor(
    private readonly server: SessionServer,
    private readonly port: number,
    private readonly logText: () => string,
    storageName: string,
  ) {
    const commandWords = new Set(server.commands.list().map((entry) => entry.name));
    this.model = new ProtocolModel({ ...FUZZ_LIMITS, commandWords, storageName }, FIXED_IDS);
    // Fires once the server has released what the connection held (its session written, its lock freed).
    server.hooks.disconnect.tap('fuzz', (connection) => {
      this.departed.add(connection.remoteAddress);
      this.departures.get(connection.remoteAddress)?.();
    });
  }

  async step(index: number, step: Step): Promise<void> {
    const name = `step ${index}, connection ${step.connection}`;
    const live = this.live.get(step.connection) ?? (await this.connect(step.connection));
    const lines = step.lines.map((line) => renderLine(line, this.model.ids));
    const due = live.held?.line ? [live.held.line, ...lines] : [...lines];
    const batch = Buffer.concat([live.held?.rest ?? Buffer.alloc(0), ...lines.flatMap((line) => [line, LF])]);
    const last = lines[lines.length - 1]!;
    const hold = Math.min(step.holdBack, last.length + 1);
    const bytes = batch.subarray(0, batch.length - hold);
    live.held = null;
    if (hold > 0) {
      // A line already longer than the limit is refused before its end arrives; the rest is discarded.
      const answeredNow = last.length - (hold - 1) > FUZZ_LIMITS.maxLineLength;
      live.held = { rest: batch.subarray(batch.length - hold), line: answeredNow ? null : last };
      if (!answeredNow) due.pop();
    }
    await live.client.write(cutInto(bytes, step.cuts));
    // After a FIN an unfinished line is not a request: the server answers the rest and closes.
    if (step.ending === 'half-close') live.client.end();
    const closedByServer = await this.exchange(name, live, due);
    if (closedByServer || step.ending === 'half-close') {
      const after = await live.client.next(REPLY_TIMEOUT_MS);
      if (after !== null) throw new Error(`${name}: a reply after the last answer, where the server should close: ${JSON.stringify(after)}`);
    } else if (step.ending === 'drop') {
      live.client.destroy();
    }
    if (closedByServer || step.ending !== 'keep') await this.departure(name, step.connection, live);
    this.checkLog(name);
  }

  /** Reads one reply per line, each checked against (and then applied to) the model. True when the server closed. */
  private async exchange(name: string, live: Live, lines: readonly Buffer[]): Promise<boolean> {
    for (const [index, line] of lines.entries()) {
      const expectation = this.model.expect(live.modelId, line);
      const reply = await live.client.next(REPLY_TIMEOUT_MS).catch((error: Error) => {
        throw new Error(`${name}: ${error.message} to line ${index} ${show(line)}`);
      });
      this.transcript.push(`${name}  > ${show(line)}\n${' '.repeat(name.length)}  < ${reply === null ? '(closed)' : show(Buffer.from(reply))}`);
      if (live.client.malformed) throw new Error(`${name}: malformed reply: ${live.client.malformed}`);
      if (reply === null) throw new Error(`${name}: the server closed the connection without answering line ${index} ${show(line)}`);
      try {
        expectation.settle(reply);
      } catch (error) {
        throw new Error(`${name}, line ${index} ${show(line)}: ${(error as Error).message}`);
      }
      if (expectation.closes) return true;
    }
    return false;
  }

  /** Once every program step ran: the server answers, the stored sessions are the model's, nothing stays held or locked. */
  async finish(): Promise<void> {
    for (const [slot, live] of [...this.live]) {
      const held = live.held;
      await live.client.write([Buffer.concat([held?.rest ?? Buffer.alloc(0), Buffer.from('ping\n')])]);
      await this.exchange(`end, connection ${slot}`, live, [...(held?.line ? [held.line] : []), Buffer.from('ping')]);
      live.client.destroy();
      await this.departure('end', slot, live);
    }
    const checker = await this.connect(-1);
    const lines = ['stats'];
    const stored = [...this.model.store.keys()];
    // Every id the program could name: a stored one reads back as the model has it, any other is not there.
    for (const id of new Set([...this.model.ids, ...stored])) lines.push(`open ${id} r`, ...(this.model.store.has(id) ? ['get_all json', 'get_all', 'keys', 'close'] : []));
    // A writer lock left behind would answer `err Session is locked` here (lockTimeout is small).
    for (const id of stored) lines.push(`open ${id} w`, 'close');
    lines.push('stats', 'quit');
    await checker.client.write([Buffer.from(lines.map((line) => `${line}\n`).join(''))]);
    await this.exchange('final check', checker, lines.map((line) => Buffer.from(line)));
    this.checkLog('final check');
  }

  report(): string {
    const log = this.logText().trim();
    return [
      '--- transcript (last 40 exchanges) ---',
      ...this.transcript.slice(-40),
      ...(log ? ['--- server warnings and errors ---', log] : []),
    ].join('\n');
  }

  destroyAll(): void {
    for (const live of this.live.values()) live.client.destroy();
  }

  private async connect(slot: number): Promise<Live> {
    const client = await RawClient.open(this.port);
    const live: Live = { client, modelId: this.model.connect(), address: client.address, held: null };
    this.live.set(slot, live);
    return live;
  }

  /** Waits until the server has released the connection, then lets the model do the same. */
  private async departure(name: string, slot: number, live: Live): Promise<void> {
    if (!this.departed.has(live.address)) {
      let timer: NodeJS.Timeout | undefined;
      await new Promise<void>((resolve, reject) => {
        this.departures.set(live.address, resolve);
        timer = setTimeout(() => reject(new Error(`${name}: the server did not release connection ${slot} within ${REPLY_TIMEOUT_MS} ms`)), REPLY_TIMEOUT_MS);
      }).finally(() => clearTimeout(timer));
    }
    // Forgotten, in case a later connection of this run gets the same port.
    this.departed.delete(live.address);
    this.departures.delete(live.address);
    this.model.disconnect(live.modelId);
    this.live.delete(slot);
  }

  /** The server logs an unexpected error (a command that threw) at error level: never acceptable. */
  private checkLog(name: string): void {
    if (this.server.counters.errors > 0 || /"level":(50|60)/.test(this.logText())) {
      throw new Error(`${name}: the server hit an unexpected error (counters.errors=${this.server.counters.errors})`);
    }
  }
}

function show(line: Buffer): string {
  const text = JSON.stringify(line.toString('utf8'));
  return text.length > 90 ? `${text.slice(0, 80)}…(${line.length} bytes)` : text;
}
