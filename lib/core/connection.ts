import type { Socket } from 'node:net';
import type { LineServer } from './line-server.js';

const LF = 10;
// Replies are batched into one write per read; past this size they go out at once, so a
// pipelined burst of large replies never builds one huge string.
const FLUSH_AT = 64 * 1024;

/**
 * Connections with replies to write at the end of this event-loop turn. Writing each reply as
 * soon as its line ran wakes its client while the server still has other clients' lines to
 * read, and every wake-up of a sleeping peer is paid inside the sending write(). Written
 * together once all of the turn's reads have run (as redis-server does before it sleeps),
 * the clients wake once for several replies: +19 % requests per second at 50 clients × 1.
 */
const toFlush: Connection[] = [];

function flushTurn(): void {
  // A flush may schedule more (a reply that ends a connection): those join this loop.
  for (let i = 0; i < toFlush.length; i++) toFlush[i]!.flushNow();
  toFlush.length = 0;
}
const LINE_TOO_LONG = null;
type QueuedLine = string | typeof LINE_TOO_LONG;

/**
 * One client: frames its bytes into lines, runs them one at a time in arrival order
 * (pipelining), batches the replies into as few writes as possible, and holds the
 * connection's protocol state. Commands receive it as their context.
 */
export class Connection {
  readonly id: number;
  readonly server: LineServer;
  readonly socket: Socket;
  readonly remoteAddress: string;
  /** The authenticated user, set by an auth plugin; null when none is required or given. */
  user: string | null = null;
  /** Free for plugins and commands to keep per-connection state in (a subclass of the server keeps its own typed fields). */
  state: Record<string, any> | null = null;
  /** The client is gone (or being dropped); no further lines run. */
  closed = false;
  linesReceived = 0;
  unknownStreak = 0;
  /**
   * When the client last sent a complete line or got a reply (ms); the server's idle sweep
   * reads it. Bytes alone do not count: a client dribbling a line byte by byte is idle.
   */
  lastActive = Date.now();
  /** The client half-closed (sent FIN): it sends nothing more, but still reads its replies. */
  inputEnded = false;

  private partial: Buffer[] | null = null;
  private partialBytes = 0;
  private discarding = false;
  private queue: QueuedLine[] | null = null;
  private queueHead = 0;
  private running: Promise<void> | null = null;
  /** The socket's send buffer is full: run nothing more until the client reads. */
  private writeBlocked = false;
  private replies = '';
  private ending = false;
  /** Not read because the server's input budget is spent (maxInputBuffer). */
  private inputPaused = false;
  private finishing = false;
  private abortController: AbortController | null = null;

  constructor(server: LineServer, socket: Socket, id: number) {
    this.server = server;
    this.socket = socket;
    this.id = id;
    this.remoteAddress = `${socket.remoteAddress}:${socket.remotePort}`;
    socket.on('data', (chunk: Buffer) => this.onData(chunk));
    socket.on('end', () => this.onEnd());
  }

  /** The server's logger, for commands and plugins. Never log values or secrets with it. */
  get log() {
    return this.server.log;
  }

  /** Aborted when the client goes away, so lock waits end with it. */
  get abortSignal(): AbortSignal {
    return (this.abortController ??= new AbortController()).signal;
  }

  /** The command in flight, if any; resolves when its reply is queued. */
  get idle(): Promise<void> {
    return this.running ?? Promise.resolve();
  }

  /** Send the current reply, then close: no further lines of this client run. */
  end(): void {
    this.ending = true;
    this.queue = null;
    this.queueHead = 0;
  }

  /** Stop reading and abort waits; the server then releases what the connection held. */
  markClosed(): void {
    if (this.closed) return;
    this.closed = true;
    this.queue = null;
    this.queueHead = 0;
    this.dropPartial();
    this.abortController?.abort();
  }

  /** Silent and not running a command (a writer waiting for a lock is not idle). */
  isIdle(): boolean {
    return this.running === null;
  }

  private onData(chunk: Buffer): void {
    const maxLineLength = this.server.limits.maxLineLength;
    let start = 0;
    while (!this.ending) {
      const lf = chunk.indexOf(LF, start);
      if (lf === -1) {
        this.keepPartial(chunk, start, maxLineLength);
        break;
      }
      // A complete line is activity; bytes of an unfinished one are not (once per read: cheap).
      if (start === 0) this.lastActive = Date.now();
      if (this.discarding) {
        this.discarding = false;
      } else if (this.partial) {
        const tail = chunk.subarray(start, lf);
        const total = this.partialBytes + tail.length;
        this.partial.push(tail);
        const line = total > maxLineLength ? LINE_TOO_LONG : Buffer.concat(this.partial, total).toString('utf8');
        this.dropPartial();
        this.receive(line);
      } else if (lf - start > maxLineLength) {
        this.receive(LINE_TOO_LONG);
      } else if (this.canRunNow()) {
        // Nothing ahead of it: run it from the read buffer, never decoded as a whole.
        this.settle(this.server.dispatchBytes(this, chunk, start, lf));
      } else {
        this.receive(chunk.toString('utf8', start, lf));
      }
      start = lf + 1;
    }
    this.flushSoon();
  }

  private keepPartial(chunk: Buffer, start: number, maxLineLength: number): void {
    if (this.discarding || start === chunk.length) return;
    const bytes = this.partialBytes + chunk.length - start;
    if (bytes > maxLineLength) {
      // Answer now and drop the rest of this line as it arrives: memory stays bounded.
      this.dropPartial();
      this.discarding = true;
      this.receive(LINE_TOO_LONG);
      return;
    }
    // Copy: a slice would pin the whole read buffer for as long as the line stays unfinished.
    (this.partial ??= []).push(Buffer.from(chunk.subarray(start)));
    const added = bytes - this.partialBytes;
    this.partialBytes = bytes;
    if (!this.server.inputBudget.take(this, added, this.resumeInput)) {
      // Over the server-wide budget for unfinished lines: stop reading until it frees up.
      this.inputPaused = true;
      this.socket.pause();
    }
  }

  /** Forgets the unfinished line and gives its bytes back to the server's input budget. */
  private dropPartial(): void {
    const bytes = this.partialBytes;
    this.partial = null;
    this.partialBytes = 0;
    if (bytes > 0 || this.inputPaused) {
      this.inputPaused = false;
      this.server.inputBudget.give(this, bytes);
    }
  }

  private readonly resumeInput = (): void => {
    this.inputPaused = false;
    this.resumeReading();
  };

  private resumeReading(): void {
    if (!this.running && !this.writeBlocked && !this.ending && !this.closed && !this.inputPaused) this.socket.resume();
  }

  /**
   * The client sent FIN (`nc -N`, `socket.end(bytes)`): it will send nothing more but still
   * reads. Its complete lines run and are answered, then the server writes what it held and
   * closes. An unterminated last line is not a request and is dropped.
   */
  private onEnd(): void {
    this.inputEnded = true;
    this.discarding = false;
    this.dropPartial();
    this.finishIfDone();
  }

  private finishIfDone(): void {
    if (!this.inputEnded || this.finishing || this.ending || this.closed) return;
    if (this.running || this.writeBlocked || this.queue !== null) return;
    this.finishing = true;
    this.flush();
    void this.server.finishConnection(this);
  }

  /** No command in flight, output flowing, nothing queued: a line that arrives now runs now. */
  private canRunNow(): boolean {
    return this.running === null && !this.writeBlocked && this.queue === null;
  }

  private receive(line: QueuedLine): void {
    if (!this.canRunNow()) {
      (this.queue ??= []).push(line);
      return;
    }
    this.execute(line);
  }

  private execute(line: QueuedLine): void {
    this.settle(line === LINE_TOO_LONG ? this.server.lineTooLongReply() : this.server.dispatch(this, line));
  }

  /** Queues a reply for the next write; an async one holds the connection's later lines until it settles. */
  private settle(reply: string | Promise<string>): void {
    if (typeof reply === 'string') {
      this.replies += reply;
      if (this.replies.length >= FLUSH_AT) this.flush();
      return;
    }
    this.socket.pause();
    this.running = reply.then((text) => {
      this.replies += text;
      this.running = null;
      this.lastActive = Date.now();
      this.continue();
    });
  }

  /** Runs queued lines until one goes async, output blocks or the queue is empty. */
  private continue(): void {
    const queue = this.queue;
    while (queue && !this.running && !this.writeBlocked && !this.ending && this.queueHead < queue.length) {
      this.execute(queue[this.queueHead++]!);
    }
    if (queue && this.queueHead >= queue.length && this.queue === queue) {
      this.queue = null;
      this.queueHead = 0;
    }
    this.flushSoon();
    this.resumeReading();
    this.finishIfDone();
  }

  private flushScheduled = false;

  /** Writes the queued replies at the end of this event-loop turn (see toFlush). */
  private flushSoon(): void {
    if (this.flushScheduled) return;
    this.flushScheduled = true;
    if (toFlush.push(this) === 1) setImmediate(flushTurn);
  }

  /** Writes the queued replies now: before the server ends the socket, or at the end of the turn. */
  flushNow(): void {
    this.flushScheduled = false;
    this.flush();
  }

  private flush(): void {
    if (this.replies !== '') {
      const text = this.replies;
      this.replies = '';
      if (!this.socket.writable) return;
      if (!this.socket.write(text) && !this.ending && !this.writeBlocked) {
        // The client is not reading its replies: stop reading and running its requests until it does.
        this.writeBlocked = true;
        this.socket.pause();
        this.socket.once('drain', () => {
          this.writeBlocked = false;
          this.continue();
        });
      }
    }
    if (this.ending && !this.running) {
      this.socket.end();
      // Read on (and ignore) whatever the client still sends, so its FIN is seen and the
      // connection released: a paused socket would hold the session's lock until idle timeout.
      this.socket.resume();
    }
  }
}
