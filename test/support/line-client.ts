import { connect, type Socket } from 'node:net';
import { connect as tlsConnect, type ConnectionOptions } from 'node:tls';

/** A test client that speaks the protocol: send lines, await reply lines (CRLF-terminated). */
export class LineClient {
  private buffer = '';
  private readonly waiting: Array<(line: string | null) => void> = [];
  private readonly lines: Array<string | null> = [];
  closed = false;
  /** Why the connection failed, if it did (under TLS, a refused handshake shows up here). */
  error: Error | null = null;

  private constructor(readonly socket: Socket) {
    socket.setEncoding('utf8');
    socket.on('data', (chunk: string) => {
      this.buffer += chunk;
      let end: number;
      while ((end = this.buffer.indexOf('\r\n')) !== -1) {
        this.push(this.buffer.slice(0, end));
        this.buffer = this.buffer.slice(end + 2);
      }
    });
    socket.on('error', (error) => (this.error ??= error));
    socket.on('close', () => {
      this.closed = true;
      this.push(null);
    });
  }

  static connect(port: number, host = '127.0.0.1'): Promise<LineClient> {
    return new Promise((resolve, reject) => {
      const socket = connect(port, host, () => resolve(new LineClient(socket)));
      socket.once('error', reject);
    });
  }

  /**
   * Over TLS to a server on 127.0.0.1 whose certificate names `localhost`; resolves after the
   * handshake as the client sees it (under TLS 1.3 the server may still refuse its certificate).
   */
  static connectTls(port: number, options: ConnectionOptions): Promise<LineClient> {
    return new Promise((resolve, reject) => {
      const socket = tlsConnect({ host: '127.0.0.1', port, servername: 'localhost', ...options }, () => resolve(new LineClient(socket)));
      socket.once('error', reject);
    });
  }

  private push(line: string | null): void {
    const waiter = this.waiting.shift();
    if (waiter) waiter(line);
    else this.lines.push(line);
  }

  /** The next reply line, or null once the server closed the connection. */
  read(timeoutMs = 30_000): Promise<string | null> {
    if (this.lines.length) return Promise.resolve(this.lines.shift()!);
    if (this.closed) return Promise.resolve(null);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        const index = this.waiting.indexOf(done);
        if (index !== -1) this.waiting.splice(index, 1);
        reject(new Error(`no reply within ${timeoutMs} ms`));
      }, timeoutMs);
      const done = (line: string | null) => {
        clearTimeout(timer);
        resolve(line);
      };
      this.waiting.push(done);
    });
  }

  send(line: string): void {
    this.socket.write(`${line}\n`);
  }

  /** Sends one request and returns its reply. */
  async request(line: string, timeoutMs?: number): Promise<string | null> {
    this.send(line);
    return this.read(timeoutMs);
  }

  /** Sends all lines at once (pipelined) and returns their replies in order. */
  async pipeline(lines: string[]): Promise<Array<string | null>> {
    this.socket.write(lines.map((line) => `${line}\n`).join(''));
    const replies: Array<string | null> = [];
    for (let i = 0; i < lines.length; i++) replies.push(await this.read());
    return replies;
  }

  /** Reply lines that arrived and were not read yet: 0 proves the server has not answered. */
  get unread(): number {
    return this.lines.filter((line) => line !== null).length;
  }

  /** Resolves true once the server has closed the connection (false if it did not within `timeoutMs`). */
  async closedByServer(timeoutMs = 10_000): Promise<boolean> {
    if (this.closed) return true;
    return new Promise((resolve) => {
      const timer = setTimeout(() => resolve(this.closed), timeoutMs);
      this.socket.once('close', () => {
        clearTimeout(timer);
        resolve(true);
      });
    });
  }

  close(): void {
    this.socket.destroy();
  }
}
