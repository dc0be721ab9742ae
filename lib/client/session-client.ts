import { EventEmitter } from 'node:events';
import { connect as netConnect, type Socket } from 'node:net';
import { connect as tlsConnect, type ConnectionOptions as TlsOptions } from 'node:tls';
import type { SessionMode } from '../protocol/session-mode.js';
import { parseRequest } from '../protocol/request.js';
import { isValidSessionId } from '../protocol/session-id.js';
import { isServerError, SessionConnectionError, SessionLostError, SessionServerError, SessionTimeoutError } from './errors.js';

export interface ReconnectOptions {
  /** Attempts per outage before pending requests fail; the next request starts a new round. Default 20. */
  retries?: number;
  /** First back-off delay in ms, doubled per attempt. Default 100. */
  minDelay?: number;
  /** Longest back-off delay in ms. Default 2000. */
  maxDelay?: number;
}

export interface SessionClientOptions {
  /** Default 127.0.0.1. */
  host?: string;
  /** Default 9090. */
  port?: number;
  /** `true` or node:tls options (ca, cert, servername, …) to speak TLS, e.g. through a TLS terminator. */
  tls?: boolean | TlsOptions;
  /**
   * Milliseconds to wait for the connection, and for the next reply while requests are
   * outstanding (a read timeout). Keep it above the server's lock timeout (10 s by default),
   * which an `open … rw` may wait out. 0 waits forever. Default 30000.
   */
  timeout?: number;
  /** Milliseconds to wait for a connection; default `timeout` (or 10000 when that is 0). */
  connectTimeout?: number;
  /**
   * Reconnect with back-off when the connection drops, default on. A client that held a
   * session does reconnect, but reports the loss (`SessionLostError`): its lock is gone.
   */
  reconnect?: boolean | ReconnectOptions;
}

/** What `hello` reports. */
export interface ServerHello {
  name: string;
  version: string;
  protocol: number;
  capabilities: string[];
  /** Every `key=value` field of the line (`protocol`, `capabilities`, `storage`, …). */
  fields: Record<string, string>;
}

export type SessionValue = string | number | boolean;

interface Pending {
  readonly line: string;
  readonly word: string;
  readonly arg1: string;
  /** Sent by the client itself (auth after a reconnect): never re-sent. */
  readonly internal?: boolean;
  resolve(payload: string): void;
  reject(error: Error): void;
}

type State = 'connecting' | 'open' | 'reconnecting' | 'disconnected' | 'closed';

const DEFAULT_TIMEOUT = 30_000;
const DEFAULT_RECONNECT: Required<ReconnectOptions> = { retries: 20, minDelay: 100, maxDelay: 2000 };
// Commands that need no session: they still work after a session was lost.
const SESSIONLESS = new Set(['new', 'open', 'close', 'ping', 'hello', 'help', 'stats', 'auth', 'gc', 'ids', 'quit']);
// Safe to send again when a connection holding no session dropped before their replies came:
// running them twice changes nothing that matters (an `open` that ran lost its lock with the connection).
const RESENDABLE = new Set(['open', 'ping', 'hello', 'help', 'stats', 'auth', 'gc', 'ids']);
const MODES = new Set<string>(['r', 'w', 'rw']);
// The server trims these off a line, so a value may not end in them, and a key may hold none.
const TRIMMED_AT_END = /[ \t\0\v]$/;
const UNSAFE_IN_KEY = /[ \t\r\n\0\v]/;
const LINE_BREAK = /[\r\n]/;

/**
 * A sessionserver client over one TCP (or TLS) connection. Every protocol command is a
 * method returning a promise; requests are written at once (pipelined) and settle in
 * order. An `err` reply rejects with `SessionServerError` carrying the server's text.
 *
 * A writer lock belongs to the connection, so a web app uses one client per request that
 * opens a session: see `SessionPool`.
 *
 * Events: `connect`, `reconnecting` ({ attempt, delay }), `disconnect` (Error),
 * `sessionLost` (SessionLostError), `end` (closed for good).
 */
export class SessionClient extends EventEmitter {
  readonly host: string;
  readonly port: number;
  /** The session this connection holds, as far as the replies so far tell; null when none. */
  sessionId: string | null = null;
  /** Mode of the held session. */
  mode: SessionMode | null = null;
  /** When the client last had a reply (ms since the epoch); the pool's health check reads it. */
  lastReplyAt = 0;

  private readonly tls: TlsOptions | null;
  private readonly timeout: number;
  private readonly connectTimeout: number;
  private readonly reconnectPolicy: Required<ReconnectOptions> | null;
  private socket: Socket | null = null;
  private state: State = 'connecting';
  private buffer = '';
  private readonly pending: Pending[] = [];
  /** Requests made while (re)connecting, sent in order once connected. */
  private outbox: Pending[] = [];
  private readTimer: NodeJS.Timeout | null = null;
  private retryTimer: NodeJS.Timeout | null = null;
  private attempt = 0;
  private credentials: string | null = null;
  /** Set when the connection dropped while holding a session; cleared by `open`, `create` or `close`. */
  private lost: SessionLostError | null = null;
  /** The last line the server sent on its own (`err Idle timeout`), to explain a close. */
  private serverNotice: string | null = null;

  private constructor(options: SessionClientOptions) {
    super();
    this.host = options.host ?? '127.0.0.1';
    this.port = options.port ?? 9090;
    this.tls = options.tls ? (options.tls === true ? {} : options.tls) : null;
    this.timeout = options.timeout ?? DEFAULT_TIMEOUT;
    this.connectTimeout = options.connectTimeout ?? (this.timeout || 10_000);
    const reconnect = options.reconnect ?? true;
    this.reconnectPolicy = reconnect === false ? null : { ...DEFAULT_RECONNECT, ...(reconnect === true ? {} : reconnect) };
  }

  /** Connects; rejects with SessionConnectionError (or SessionTimeoutError) when the server cannot be reached. */
  static async connect(options: SessionClientOptions = {}): Promise<SessionClient> {
    const client = new SessionClient(options);
    await client.openSocket();
    return client;
  }

  /** The loss this client reports until `open`, `create` or `close`; null when none. */
  get sessionLoss(): SessionLostError | null {
    return this.lost;
  }

  /** True while the socket is up. */
  get connected(): boolean {
    return this.state === 'open';
  }

  /** True once `disconnect()` or `quit()` ended the client for good. */
  get closed(): boolean {
    return this.state === 'closed';
  }

  /** Requests sent and not yet answered (plus those waiting for a reconnect). */
  get inFlight(): number {
    return this.pending.length + this.outbox.length;
  }

  // ---- The protocol, one method per command. ----

  /** `new`: creates a session with a fresh id, opens it rw, resolves its id. */
  create(): Promise<string> {
    return this.request('new');
  }

  /** `open <sid> <mode>`: waits for the writer lock in w/rw (up to the server's lock timeout). */
  async open(sessionId: string, mode: SessionMode = 'rw'): Promise<void> {
    if (!isValidSessionId(sessionId)) throw new TypeError(`invalid session id ${JSON.stringify(sessionId)}`);
    if (!MODES.has(mode)) throw new TypeError(`invalid mode ${JSON.stringify(mode)} (r, w or rw)`);
    await this.request(`open ${sessionId} ${mode}`);
  }

  /** The value, or undefined when the key does not exist. */
  async get(key: string): Promise<string | undefined> {
    try {
      return await this.request(`get ${checkKey(key)}`);
    } catch (error) {
      if (isServerError(error, 'E_NO_KEY')) return undefined;
      throw error;
    }
  }

  /** Stores one value (as a string). Values with line breaks or trailing blanks need `putAll`. */
  async put(key: string, value: SessionValue): Promise<void> {
    const text = String(value);
    if (LINE_BREAK.test(text)) throw new TypeError('put: a value with CR or LF cannot travel on one line; use putAll');
    if (TRIMMED_AT_END.test(text)) throw new TypeError('put: the server trims trailing blanks off a line; use putAll');
    await this.request(`put ${checkKey(key)} ${text}`);
  }

  async exists(key: string): Promise<boolean> {
    try {
      await this.request(`exists ${checkKey(key)}`);
      return true;
    } catch (error) {
      if (isServerError(error, 'E_NO_KEY')) return false;
      throw error;
    }
  }

  /** Deletes a key; false when it did not exist. */
  async remove(key: string): Promise<boolean> {
    try {
      await this.request(`remove ${checkKey(key)}`);
      return true;
    } catch (error) {
      if (isServerError(error, 'E_NO_KEY')) return false;
      throw error;
    }
  }

  async keys(): Promise<string[]> {
    const payload = await this.request('keys');
    return payload === '' ? [] : payload.split('|');
  }

  /** Writes pending changes and continues read-only (the writer lock is released). */
  async commit(): Promise<void> {
    await this.request('commit');
  }

  /** Writes pending changes and releases the session. After a session loss it only clears the loss. */
  async close(): Promise<void> {
    if (this.lost !== null && this.sessionId === null && this.inFlight === 0) {
      this.lost = null;
      return;
    }
    await this.request('close');
  }

  /** Deletes the open session (needs w/rw) and releases it. */
  async destroy(): Promise<void> {
    await this.request('destroy');
  }

  /** Moves the session to a fresh id and resolves it. */
  regenerateId(): Promise<string> {
    return this.request('regenerate_id');
  }

  /** Every value of the open session (`get_all json`). */
  async getAll(): Promise<Record<string, string>> {
    return JSON.parse(await this.request('get_all json')) as Record<string, string>;
  }

  /** Replaces every value of the open session (`put_all {json}`); any string travels safely this way. */
  async putAll(values: Record<string, SessionValue>): Promise<void> {
    await this.request(`put_all ${JSON.stringify(values)}`);
  }

  /** Deletes sessions idle that long (default: the server's max lifetime); resolves how many. */
  async gc(seconds?: number): Promise<number> {
    return Number(await this.request(seconds === undefined ? 'gc' : `gc ${wholeNumber(seconds, 'gc')}`));
  }

  /** Marks the open session as accessed now. */
  async touch(): Promise<void> {
    await this.request('touch');
  }

  /** Seconds the open session has left if nobody accesses it (`ttl`). */
  async ttl(): Promise<number> {
    return Number(await this.request('ttl'));
  }

  /** Gives the open session its own idle lifetime in seconds; null hands it back to the server's max lifetime. */
  async setTtl(seconds: number | null): Promise<void> {
    await this.request(seconds === null ? 'ttl default' : `ttl ${wholeNumber(seconds, 'setTtl')}`);
  }

  /** Every session id (`ids`; the server must enable listSessionIds). */
  async ids(): Promise<string[]> {
    const payload = await this.request('ids');
    return payload === '' ? [] : payload.split('|');
  }

  ping(): Promise<string> {
    return this.request('ping');
  }

  async hello(): Promise<ServerHello> {
    const payload = await this.request('hello');
    const [name = '', version = '', ...rest] = payload.split(' ');
    const fields: Record<string, string> = {};
    for (const field of rest) {
      const eq = field.indexOf('=');
      if (eq > 0) fields[field.slice(0, eq)] = field.slice(eq + 1);
    }
    return {
      name,
      version,
      protocol: Number(fields.protocol ?? 1),
      capabilities: fields.capabilities ? fields.capabilities.split(',') : [],
      fields,
    };
  }

  /** The server's command list (`help`), or one command's usage and summary. */
  help(command?: string): Promise<string> {
    return this.request(command ? `help ${command}` : 'help');
  }

  /** The server's counters (`stats`) as name → value. */
  async stats(): Promise<Record<string, string>> {
    const fields: Record<string, string> = {};
    for (const pair of (await this.request('stats')).split(' ')) {
      const eq = pair.indexOf('=');
      if (eq > 0) fields[pair.slice(0, eq)] = pair.slice(eq + 1);
    }
    return fields;
  }

  /** `auth <token>` or `auth <user> <password>`; repeated automatically after a reconnect. */
  async auth(tokenOrUser: string, password?: string): Promise<void> {
    await this.request(password === undefined ? `auth ${tokenOrUser}` : `auth ${tokenOrUser} ${password}`);
  }

  /** `quit`: the server replies, writes and releases the session, and closes; the client ends for good. */
  async quit(): Promise<void> {
    if (this.state !== 'open') {
      this.disconnect();
      return;
    }
    const reply = this.request('quit');
    this.state = 'closed';
    try {
      await reply;
    } finally {
      this.shutdown();
    }
  }

  /** Closes the connection now; what is pending rejects. The server still writes the held session. */
  disconnect(): void {
    this.shutdown();
    this.failAll(() => new SessionConnectionError('Client disconnected', 'ECLOSED'));
  }

  /**
   * Sends one raw request line and resolves its `ok` payload ('' for a bare `ok`); an
   * `err` rejects with SessionServerError. The typed methods above all go through here.
   */
  request(line: string): Promise<string> {
    if (LINE_BREAK.test(line)) return Promise.reject(new TypeError('a request is one line: no CR or LF'));
    const { word, arg1 } = parseRequest(line);
    if (this.lost !== null && !SESSIONLESS.has(word)) return Promise.reject(this.lost);
    return new Promise<string>((resolve, reject) => {
      const entry: Pending = { line, word, arg1, resolve, reject };
      switch (this.state) {
        case 'open':
          this.write(entry);
          break;
        case 'closed':
          reject(new SessionConnectionError('Client is closed', 'ECLOSED'));
          break;
        case 'disconnected':
          if (!this.reconnectPolicy) {
            reject(new SessionConnectionError('Not connected', 'ENOTCONN'));
            break;
          }
          // The last round of retries gave up; this request starts a new one.
          this.outbox.push(entry);
          this.attempt = 0;
          this.scheduleReconnect(0);
          break;
        default:
          this.outbox.push(entry);
      }
    });
  }

  // ---- Connection handling. ----

  private openSocket(): Promise<void> {
    this.state = this.state === 'reconnecting' ? 'reconnecting' : 'connecting';
    return new Promise<void>((resolve, reject) => {
      const socket = this.tls
        ? tlsConnect({ host: this.host, port: this.port, servername: isIp(this.host) ? undefined : this.host, ...this.tls })
        : netConnect({ host: this.host, port: this.port });
      const readyEvent = this.tls ? 'secureConnect' : 'connect';
      let settled = false;
      const timer = this.connectTimeout > 0
        ? setTimeout(() => fail(new SessionTimeoutError(`No connection to ${this.host}:${this.port} within ${this.connectTimeout} ms`)), this.connectTimeout)
        : null;
      const fail = (error: Error) => {
        if (settled) return;
        settled = true;
        if (timer) clearTimeout(timer);
        socket.destroy();
        reject(error instanceof SessionConnectionError ? error : new SessionConnectionError(
          `Cannot connect to ${this.host}:${this.port}: ${error.message}`,
          (error as NodeJS.ErrnoException).code ?? 'ECONNECT',
          { cause: error },
        ));
      };
      socket.once('error', fail);
      socket.once(readyEvent, () => {
        if (settled) return;
        settled = true;
        if (timer) clearTimeout(timer);
        socket.off('error', fail);
        this.attach(socket);
        resolve();
      });
    });
  }

  private attach(socket: Socket): void {
    this.socket = socket;
    this.state = 'open';
    this.buffer = '';
    this.serverNotice = null;
    this.attempt = 0;
    socket.setNoDelay(true);
    socket.setKeepAlive(true, 30_000);
    socket.setEncoding('utf8');
    socket.on('data', (chunk: string) => this.onData(chunk));
    socket.on('error', () => {}); // 'close' follows and handles it
    socket.once('close', () => this.onClose(socket));
    this.emit('connect');
    const queued = this.outbox;
    this.outbox = [];
    if (this.credentials !== null) {
      // Re-authenticate before anything else goes out: the new connection starts anonymous.
      const credentials = this.credentials;
      this.write({ line: `auth ${credentials}`, word: 'auth', arg1: '', internal: true, resolve: () => {}, reject: () => {} });
    }
    for (const entry of queued) this.write(entry);
  }

  private write(entry: Pending): void {
    this.pending.push(entry);
    this.socket!.write(`${entry.line}\n`);
    if (this.pending.length === 1) this.armReadTimer();
  }

  private armReadTimer(): void {
    if (this.timeout <= 0) return;
    if (this.readTimer) this.readTimer.refresh();
    else this.readTimer = setTimeout(() => this.onReadTimeout(), this.timeout);
  }

  private clearReadTimer(): void {
    if (this.readTimer) clearTimeout(this.readTimer);
    this.readTimer = null;
  }

  private onReadTimeout(): void {
    this.readTimer = null;
    const head = this.pending.shift();
    // The reply stream is out of step now: the connection cannot be trusted with another request.
    head?.reject(new SessionTimeoutError(`No reply to "${head.word}" within ${this.timeout} ms`));
    this.socket?.destroy();
  }

  private onData(chunk: string): void {
    this.buffer += chunk;
    let end: number;
    while ((end = this.buffer.indexOf('\n')) !== -1) {
      const line = this.buffer.charCodeAt(end - 1) === 13 ? this.buffer.slice(0, end - 1) : this.buffer.slice(0, end);
      this.buffer = this.buffer.slice(end + 1);
      this.onReply(line);
    }
  }

  private onReply(line: string): void {
    const entry = this.pending.shift();
    if (!entry) {
      // A line nobody asked for: the server says why it is about to close (idle timeout, shutdown).
      this.serverNotice = line;
      return;
    }
    this.lastReplyAt = Date.now();
    if (this.pending.length > 0) this.armReadTimer();
    else this.clearReadTimer();
    const ok = line === 'ok' || line.startsWith('ok ');
    if (ok || line === 'err' || line.startsWith('err ')) {
      const text = line.slice(ok ? 3 : 4);
      this.track(entry, ok, text);
      if (ok) entry.resolve(text);
      else entry.reject(new SessionServerError(text, entry.word));
    } else {
      entry.reject(new SessionConnectionError(`Unexpected reply: ${line.slice(0, 80)}`, 'EPROTO'));
    }
  }

  /** Follows what the connection holds, from the replies in order. */
  private track(entry: Pending, ok: boolean, payload: string): void {
    switch (entry.word) {
      case 'new':
        this.hold(ok ? payload : null, 'rw');
        break;
      case 'open': {
        const mode = parseRequest(entry.line).arg2.toLowerCase();
        this.hold(ok ? entry.arg1 : null, mode === 'r' || mode === 'w' ? mode : 'rw');
        break;
      }
      case 'close':
      case 'destroy':
        if (ok || payload === 'No session opened.') this.hold(null, null);
        break;
      case 'commit':
        if (ok) this.mode = 'r';
        break;
      case 'regenerate_id':
        if (ok) this.sessionId = payload;
        break;
      case 'auth':
        if (ok && entry.line.length > 5) this.credentials = entry.line.slice(5);
        break;
      case 'quit':
        if (ok) this.state = 'closed';
        break;
    }
  }

  private hold(sessionId: string | null, mode: SessionMode | null): void {
    this.sessionId = sessionId;
    this.mode = sessionId === null ? null : mode;
    this.lost = null;
  }

  private onClose(socket: Socket): void {
    if (this.socket !== socket) return;
    this.socket = null;
    this.clearReadTimer();
    const why = this.serverNotice ? `: ${this.serverNotice}` : '';
    const dropped = new SessionConnectionError(`Connection to ${this.host}:${this.port} closed${why}`, 'ECLOSED');
    if (this.state === 'closed') {
      // Closed on purpose (quit, disconnect): nothing is lost that the caller did not give up.
      this.hold(null, null);
      for (const entry of this.pending.splice(0)) entry.reject(dropped);
      this.emit('end');
      return;
    }
    const inFlight = this.pending.filter((entry) => !entry.internal);
    if (this.reconnectPolicy && this.sessionId === null && inFlight.every((entry) => RESENDABLE.has(entry.word))) {
      // Nothing was held and nothing in flight minds running twice: send it all again after the reconnect.
      this.pending.length = 0;
      this.outbox = [...inFlight, ...this.outbox];
      this.emit('disconnect', dropped);
      this.state = 'reconnecting';
      this.scheduleReconnect();
      return;
    }
    // An `open`/`new` in flight may have taken a lock that is gone now, too.
    const opening = this.pending.find((p) => p.word === 'open' || p.word === 'new');
    let lost: SessionLostError | null = null;
    if (this.sessionId !== null || opening) {
      lost = new SessionLostError(this.sessionId ?? (opening?.word === 'open' ? opening.arg1 : null));
      this.hold(null, null);
      this.lost = lost;
    }
    for (const entry of this.pending.splice(0)) entry.reject(lost ?? dropped);
    this.emit('disconnect', dropped);
    if (lost) this.emit('sessionLost', lost);
    if (!this.reconnectPolicy) {
      this.state = 'disconnected';
      for (const entry of this.outbox.splice(0)) entry.reject(dropped);
      return;
    }
    this.state = 'reconnecting';
    this.scheduleReconnect();
  }

  private scheduleReconnect(delayOverride?: number): void {
    const policy = this.reconnectPolicy!;
    if (this.retryTimer) return;
    this.state = 'reconnecting';
    this.attempt++;
    const base = Math.min(policy.maxDelay, policy.minDelay * 2 ** (this.attempt - 1));
    const delay = delayOverride ?? Math.round(base * (0.8 + Math.random() * 0.4));
    this.emit('reconnecting', { attempt: this.attempt, delay });
    this.retryTimer = setTimeout(() => {
      this.retryTimer = null;
      if (this.state !== 'reconnecting') return;
      this.openSocket().catch((error: Error) => {
        if (this.state !== 'reconnecting') return;
        if (this.attempt >= policy.retries) {
          this.state = 'disconnected';
          for (const entry of this.outbox.splice(0)) entry.reject(error);
          return;
        }
        this.scheduleReconnect();
      });
    }, delay);
  }

  private shutdown(): void {
    const hadSocket = this.socket !== null;
    const wasClosed = this.state === 'closed' && !hadSocket;
    this.state = 'closed';
    if (this.retryTimer) clearTimeout(this.retryTimer);
    this.retryTimer = null;
    if (hadSocket) {
      // 'close' follows: onClose settles what is pending and emits `end`.
      this.socket!.end();
      this.socket!.destroySoon();
    } else {
      this.clearReadTimer();
      if (!wasClosed) this.emit('end');
    }
  }

  private failAll(makeError: () => Error): void {
    for (const entry of this.pending.splice(0)) entry.reject(makeError());
    for (const entry of this.outbox.splice(0)) entry.reject(makeError());
  }
}

function checkKey(key: string): string {
  if (UNSAFE_IN_KEY.test(key)) throw new TypeError(`a key cannot hold blanks or line breaks: ${JSON.stringify(key)}`);
  return key;
}

function wholeNumber(value: number, what: string): number {
  if (!Number.isSafeInteger(value) || value < 0) throw new TypeError(`${what}: expected a whole number of seconds, got ${value}`);
  return value;
}

function isIp(host: string): boolean {
  return /^[\d.]+$/.test(host) || host.includes(':');
}
