import { PoolTimeoutError, SessionConnectionError } from './errors.js';
import { SessionClient, type SessionClientOptions } from './session-client.js';

export interface SessionPoolOptions extends Omit<SessionClientOptions, 'reconnect'> {
  /** Most connections at once, lent and idle together. Default 10. */
  max?: number;
  /** Milliseconds `acquire` waits for a free connection before PoolTimeoutError. Default 10000. */
  acquireTimeout?: number;
  /** Idle connections unused this long (ms) are closed. 0 keeps them. Default 30000. */
  idleTimeout?: number;
  /** A connection idle this long (ms) is pinged before it is lent, and replaced if the ping fails. Default 5000. */
  healthCheckAfter?: number;
}

interface Waiter {
  resolve(client: SessionClient): void;
  reject(error: Error): void;
  timer: NodeJS.Timeout | null;
}

/**
 * Connections to lend. A writer lock belongs to a connection, so a web app borrows one
 * per request that opens a session and returns it after `close`:
 *
 *     const pool = new SessionPool({ host, port, max: 20 });
 *     await pool.use(async (client) => { await client.open(sid); …; await client.close(); });
 *
 * A connection returned while it still holds a session has that session closed (its
 * changes written) before anyone else gets it; a broken one is dropped and replaced.
 */
export class SessionPool {
  readonly max: number;
  private readonly clientOptions: SessionClientOptions;
  private readonly acquireTimeout: number;
  private readonly idleTimeout: number;
  private readonly healthCheckAfter: number;
  private readonly idle: SessionClient[] = [];
  private readonly idleSince = new Map<SessionClient, number>();
  private readonly lent = new Set<SessionClient>();
  private readonly waiters: Waiter[] = [];
  private connecting = 0;
  private closed = false;
  private reaper: NodeJS.Timeout | null = null;

  constructor(options: SessionPoolOptions = {}) {
    const { max, acquireTimeout, idleTimeout, healthCheckAfter, ...clientOptions } = options;
    this.max = max ?? 10;
    if (!Number.isSafeInteger(this.max) || this.max < 1) throw new TypeError('SessionPool: max must be a whole number >= 1');
    this.acquireTimeout = acquireTimeout ?? 10_000;
    this.idleTimeout = idleTimeout ?? 30_000;
    this.healthCheckAfter = healthCheckAfter ?? 5_000;
    // The pool replaces broken connections itself; a lent client must not reconnect behind the borrower's back.
    this.clientOptions = { ...clientOptions, reconnect: false };
  }

  /** Connections open now (lent, idle and being opened). */
  get size(): number {
    return this.lent.size + this.idle.length + this.connecting;
  }

  get idleCount(): number {
    return this.idle.length;
  }

  get lentCount(): number {
    return this.lent.size;
  }

  /** Callers waiting in `acquire`. */
  get waiting(): number {
    return this.waiters.length;
  }

  /** Lends a connection: an idle healthy one, a new one while below `max`, else the next one returned. */
  async acquire(): Promise<SessionClient> {
    if (this.closed) throw new SessionConnectionError('Pool is closed', 'ECLOSED');
    while (this.idle.length > 0) {
      const client = this.idle.pop()!;
      const since = this.idleSince.get(client) ?? 0;
      this.idleSince.delete(client);
      if (await this.isHealthy(client, since)) return this.lend(client);
      client.disconnect();
    }
    if (this.size < this.max) return this.lend(await this.connectOne());
    return new Promise<SessionClient>((resolve, reject) => {
      const waiter: Waiter = { resolve, reject, timer: null };
      if (this.acquireTimeout > 0) {
        waiter.timer = setTimeout(() => {
          const index = this.waiters.indexOf(waiter);
          if (index !== -1) this.waiters.splice(index, 1);
          reject(new PoolTimeoutError(`No connection free within ${this.acquireTimeout} ms (max ${this.max})`));
        }, this.acquireTimeout);
      }
      this.waiters.push(waiter);
    });
  }

  /**
   * Takes a connection back. One still holding a session has it closed first (changes
   * written, lock released); one that is broken, or still has requests in flight, is dropped.
   */
  async release(client: SessionClient): Promise<void> {
    if (!this.lent.has(client)) return;
    let usable = client.connected && client.inFlight === 0;
    if (usable && (client.sessionId !== null || client.sessionLoss !== null)) {
      try {
        await client.close();
      } catch {
        usable = false;
      }
    }
    this.lent.delete(client);
    if (!usable || this.closed) {
      client.disconnect();
      this.refill();
      return;
    }
    const waiter = this.waiters.shift();
    if (waiter) {
      if (waiter.timer) clearTimeout(waiter.timer);
      waiter.resolve(this.lend(client));
      return;
    }
    this.idle.push(client);
    this.idleSince.set(client, Date.now());
    this.startReaper();
  }

  /** Borrows a connection for `task` and returns it afterwards, whatever happens. */
  async use<T>(task: (client: SessionClient) => Promise<T>): Promise<T> {
    const client = await this.acquire();
    try {
      return await task(client);
    } finally {
      await this.release(client);
    }
  }

  /** Closes idle connections and refuses new borrowers; lent connections close when returned. */
  async close(): Promise<void> {
    this.closed = true;
    if (this.reaper) clearInterval(this.reaper);
    this.reaper = null;
    for (const waiter of this.waiters.splice(0)) {
      if (waiter.timer) clearTimeout(waiter.timer);
      waiter.reject(new SessionConnectionError('Pool is closed', 'ECLOSED'));
    }
    const idle = this.idle.splice(0);
    this.idleSince.clear();
    await Promise.all(idle.map((client) => client.quit().catch(() => client.disconnect())));
  }

  private lend(client: SessionClient): SessionClient {
    this.lent.add(client);
    return client;
  }

  private async connectOne(): Promise<SessionClient> {
    this.connecting++;
    try {
      return await SessionClient.connect(this.clientOptions);
    } finally {
      this.connecting--;
    }
  }

  private async isHealthy(client: SessionClient, idleSince: number): Promise<boolean> {
    if (!client.connected || client.inFlight > 0) return false;
    if (Date.now() - idleSince < this.healthCheckAfter) return true;
    try {
      return (await client.ping()) === 'pong';
    } catch {
      return false;
    }
  }

  /** A slot was freed by a dropped connection: a waiter gets a new one. */
  private refill(): void {
    if (this.closed || this.waiters.length === 0 || this.size >= this.max) return;
    const waiter = this.waiters.shift()!;
    // Committed to this waiter now: the connect timeout bounds what is left of its wait.
    if (waiter.timer) clearTimeout(waiter.timer);
    this.connectOne().then(
      (client) => waiter.resolve(this.lend(client)),
      (error: Error) => waiter.reject(error),
    );
  }

  private startReaper(): void {
    if (this.reaper || this.idleTimeout <= 0) return;
    this.reaper = setInterval(() => this.reap(), Math.max(250, Math.min(this.idleTimeout, 10_000)));
    this.reaper.unref();
  }

  private reap(): void {
    const cutoff = Date.now() - this.idleTimeout;
    for (let i = this.idle.length - 1; i >= 0; i--) {
      const client = this.idle[i]!;
      if ((this.idleSince.get(client) ?? 0) <= cutoff || !client.connected) {
        this.idle.splice(i, 1);
        this.idleSince.delete(client);
        client.quit().catch(() => client.disconnect());
      }
    }
    if (this.idle.length === 0 && this.reaper) {
      clearInterval(this.reaper);
      this.reaper = null;
    }
  }
}
