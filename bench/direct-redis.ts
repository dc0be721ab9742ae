/**
 * The session cycle done directly on Redis by a competent hand-written client that locks
 * for itself: the bar the Redis driver is measured against (bench/session-cycle.ts).
 * Raw RESP on one connection per client (as a PHP worker with phpredis would have), 4 round
 * trips per cycle: `SET lock NX PX`, `HGETALL` the session, `HSET` + `PEXPIRE` in one
 * MULTI/EXEC, and a token-checked `DEL` of the lock (a script, by its SHA1).
 */
import { createHash, randomBytes } from 'node:crypto';
import { connect, type Socket } from 'node:net';
import type { CycleClient } from './session-cycle.js';

const LEASE_MS = 10_000;
const TTL_MS = 1_440_000;
const UNLOCK = `if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0`;
const UNLOCK_SHA = createHash('sha1').update(UNLOCK).digest('hex');
const CRLF = 0x0a;

/** A command as a RESP array of bulk strings. */
function command(...words: string[]): string {
  let text = `*${words.length}\r\n`;
  for (const word of words) text += `$${Buffer.byteLength(word)}\r\n${word}\r\n`;
  return text;
}

/** The offset just past one complete RESP reply starting at `at`, or -1 while it is incomplete. */
function replyEnd(buffer: Buffer, at: number): number {
  const lineEnd = buffer.indexOf(CRLF, at);
  if (lineEnd === -1) return -1;
  const type = buffer[at];
  if (type === 0x24 /* $ */) {
    const length = Number(buffer.toString('latin1', at + 1, lineEnd - 1));
    if (length < 0) return lineEnd + 1;
    const end = lineEnd + 1 + length + 2;
    return end <= buffer.length ? end : -1;
  }
  if (type === 0x2a /* * */) {
    let next = lineEnd + 1;
    for (let i = Number(buffer.toString('latin1', at + 1, lineEnd - 1)); i > 0; i--) {
      next = replyEnd(buffer, next);
      if (next === -1) return -1;
    }
    return next;
  }
  return lineEnd + 1;
}

export class DirectRedisClient implements CycleClient {
  private sequence = 0;
  private readonly prefix = randomBytes(4).toString('hex');
  private buffered: Buffer = Buffer.alloc(0);
  private expected = 0;
  private replies: Buffer[] = [];
  private wake: ((replies: Buffer[]) => void) | null = null;

  private constructor(
    private readonly socket: Socket,
    private readonly key: string,
    private readonly value: string,
  ) {
    socket.on('data', (chunk: Buffer) => this.received(chunk));
  }

  static async connect(port: number, id: string, value: string): Promise<DirectRedisClient> {
    const socket = await new Promise<Socket>((resolve, reject) => {
      const opened = connect({ host: '127.0.0.1', port, noDelay: true }, () => resolve(opened));
      opened.once('error', reject);
    });
    const client = new DirectRedisClient(socket, `direct:{${id}}`, value);
    await client.send(command('SCRIPT', 'LOAD', UNLOCK), 1);
    return client;
  }

  private received(chunk: Buffer): void {
    this.buffered = this.buffered.length === 0 ? chunk : Buffer.concat([this.buffered, chunk]);
    let at = 0;
    while (this.replies.length < this.expected) {
      const end = replyEnd(this.buffered, at);
      if (end === -1) break;
      this.replies.push(this.buffered.subarray(at, end));
      at = end;
    }
    this.buffered = this.buffered.subarray(at);
    if (this.replies.length === this.expected && this.wake) {
      const wake = this.wake;
      const replies = this.replies;
      this.wake = null;
      this.replies = [];
      wake(replies);
    }
  }

  /** Writes `text` (one or more commands) and resolves with its `count` replies; rejects on an error reply. */
  private async send(text: string, count: number): Promise<Buffer[]> {
    const replies = await new Promise<Buffer[]>((resolve) => {
      this.expected = count;
      this.wake = resolve;
      this.socket.write(text);
    });
    const failed = replies.find((reply) => reply[0] === 0x2d /* - */);
    if (failed) throw new Error(failed.toString('utf8').trim());
    return replies;
  }

  async cycle(): Promise<void> {
    const lock = `${this.key}:lock`;
    const token = `${this.prefix}:${++this.sequence}`;
    // The client's own session: the lock is free unless a previous cycle's unlock failed.
    const [taken] = await this.send(command('SET', lock, token, 'NX', 'PX', String(LEASE_MS)), 1);
    if (taken![0] !== 0x2b /* + */) throw new Error('lock busy');
    const [session] = await this.send(command('HGETALL', this.key), 1);
    if (session![0] !== 0x2a) throw new Error('unexpected HGETALL reply');
    await this.send(command('MULTI') + command('HSET', this.key, 'k', this.value) + command('PEXPIRE', this.key, String(TTL_MS)) + command('EXEC'), 4);
    await this.send(command('EVALSHA', UNLOCK_SHA, '1', lock, token), 1);
  }

  async close(): Promise<void> {
    this.socket.destroy();
  }
}
