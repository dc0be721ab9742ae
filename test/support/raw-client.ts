import { connect, type Socket } from 'node:net';
import { setImmediate as nextTurn } from 'node:timers/promises';

/**
 * A client for the fuzz test that writes raw bytes in chunks of its choosing and holds the
 * server to the framing: every reply is exactly one `ok[ payload]` or `err <text>` line
 * ending in CRLF, with no CR or LF inside and no bytes left over when the server closes.
 */
export class RawClient {
  private buffer: Buffer = Buffer.alloc(0);
  private readonly replies: Array<string | null> = [];
  private waiter: (() => void) | null = null;
  /** The first framing violation seen, if any. */
  malformed: string | null = null;
  closed = false;

  private constructor(readonly socket: Socket) {
    socket.setNoDelay(true);
    socket.on('data', (chunk: Buffer) => this.onData(chunk));
    socket.on('error', () => {});
    socket.on('close', () => {
      if (this.buffer.length > 0) this.malformed ??= `bytes without a line end when the server closed: ${JSON.stringify(this.buffer.toString('utf8'))}`;
      this.closed = true;
      this.replies.push(null);
      this.wake();
    });
  }

  static open(port: number): Promise<RawClient> {
    return new Promise((resolve, reject) => {
      const socket = connect(port, '127.0.0.1', () => {
        socket.off('error', reject);
        resolve(new RawClient(socket));
      });
      socket.once('error', reject);
    });
  }

  /** `host:port` as the server names this client (its remote address). */
  get address(): string {
    return `${this.socket.localAddress}:${this.socket.localPort}`;
  }

  /** Writes the chunks one by one, yielding between them so they leave as separate segments. */
  async write(chunks: readonly Buffer[]): Promise<void> {
    for (const [index, chunk] of chunks.entries()) {
      if (index > 0) await nextTurn();
      if (this.socket.destroyed || this.socket.writableEnded) return;
      this.socket.write(chunk);
    }
  }

  /** The next reply line, or null once the server has closed; rejects after `timeoutMs` of silence. */
  async next(timeoutMs: number): Promise<string | null> {
    if (this.replies.length === 0) {
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([
        new Promise<void>((resolve) => (this.waiter = resolve)),
        new Promise<void>((_, reject) => (timer = setTimeout(() => reject(new Error(`no reply within ${timeoutMs} ms`)), timeoutMs))),
      ]).finally(() => {
        clearTimeout(timer);
        this.waiter = null;
      });
    }
    const reply = this.replies.shift()!;
    if (reply === null) this.replies.unshift(null);
    return reply;
  }

  /** Half-close: no more requests, but replies are still read. */
  end(): void {
    this.socket.end();
  }

  destroy(): void {
    this.socket.destroy();
  }

  private onData(chunk: Buffer): void {
    this.buffer = this.buffer.length === 0 ? chunk : Buffer.concat([this.buffer, chunk]);
    let lf: number;
    while ((lf = this.buffer.indexOf(0x0a)) !== -1) {
      const raw = this.buffer.subarray(0, lf);
      this.buffer = this.buffer.subarray(lf + 1);
      const line = raw.toString('utf8');
      if (raw[raw.length - 1] !== 0x0d) this.malformed ??= `reply ends in a bare LF: ${JSON.stringify(line)}`;
      const text = line.endsWith('\r') ? line.slice(0, -1) : line;
      if (text.includes('\r')) this.malformed ??= `reply holds a CR: ${JSON.stringify(text)}`;
      else if (!/^(ok|ok .*|err .+)$/s.test(text)) this.malformed ??= `reply is neither ok nor err: ${JSON.stringify(text)}`;
      this.replies.push(text);
    }
    this.wake();
  }

  private wake(): void {
    const waiter = this.waiter;
    this.waiter = null;
    waiter?.();
  }
}
