import { EventEmitter } from 'node:events';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { isValidSessionId } from '../protocol/session-id.js';
import { SessionServerError } from './errors.js';
import { SessionPool, type SessionPoolOptions } from './pool.js';
import type { SessionClient } from './session-client.js';
import { decodeSessionValues, encodeSessionValues } from './values.js';

/** A session as express-session and @fastify/session hand it over: a cookie plus the app's values. */
export interface StoredSession {
  cookie?: { expires?: Date | string | null; originalMaxAge?: number | null; maxAge?: number | null };
  [key: string]: any;
}

type Callback<T = void> = (error?: any, value?: T) => void;

/** What the store needs of the express-session module: its Session and Cookie classes. */
export interface ExpressSessionModule {
  Session: new (req: any, data?: object) => object;
  Cookie: new (options?: object) => { expires?: Date | null; originalMaxAge?: number | null };
}

export interface SessionServerStoreOptions extends SessionPoolOptions {
  /** Share a pool instead of opening one from host/port/…; the store then leaves it open on close(). */
  pool?: SessionPool;
  /**
   * Locking mode: a request holds its session `rw` from the first read to the save, so
   * concurrent requests of one user run one after another, as PHP's do. Default false.
   */
  locking?: boolean;
  /** Locking mode: a request holding its session longer (ms) loses the lock, its save then goes the plain way. Default 60000. */
  holdTimeout?: number;
  /** Lifetime in seconds (or a function of the session); default: the time to the cookie's `expires`, else the server's max lifetime. */
  ttl?: number | ((session: StoredSession) => number | null);
  /** The express-session module, when it cannot be found from the working directory (createSession/load need its classes). */
  expressSession?: ExpressSessionModule;
}

interface Hold {
  readonly sessionId: string;
  readonly client: SessionClient;
  readonly timer: NodeJS.Timeout;
}

const NOT_FOUND = 'Could not open session.';

/**
 * An express-session store (and @fastify/session store) on sessionserver. Each session's
 * top-level properties become the session's keys (see values.ts: strings as they are,
 * anything else as JSON), so PHP and other clients read the same values. The cookie's
 * expiry becomes the session's own lifetime on the server (`ttl`).
 *
 *     app.use(session({ store: new SessionServerStore({ host, port }), secret, resave: false, saveUninitialized: false }));
 */
export class SessionServerStore extends EventEmitter {
  readonly pool: SessionPool;
  readonly locking: boolean;
  /** Installed by express-session's middleware: makes a fresh session on `req`. */
  generate?: (req: any) => void;

  private readonly ownsPool: boolean;
  private readonly holdTimeout: number;
  private readonly ttlOption: SessionServerStoreOptions['ttl'];
  private expressModule: ExpressSessionModule | undefined;
  private readonly holds = new Map<string, Hold>();

  constructor(options: SessionServerStoreOptions = {}) {
    super();
    const { pool, locking, holdTimeout, ttl, expressSession, ...poolOptions } = options;
    this.pool = pool ?? new SessionPool(poolOptions);
    this.ownsPool = pool === undefined;
    this.locking = locking ?? false;
    this.holdTimeout = holdTimeout ?? 60_000;
    this.ttlOption = ttl;
    this.expressModule = expressSession;
  }

  // ---- The Store interface (callback style, as express-session and @fastify/session call it). ----

  get(sessionId: string, callback: Callback<any>): void {
    settle(this.locking ? this.readHeld(sessionId) : this.read(sessionId), callback);
  }

  set(sessionId: string, session: StoredSession, callback?: Callback): void {
    settle(this.write(sessionId, session), callback);
  }

  destroy(sessionId: string, callback?: Callback): void {
    settle(this.remove(sessionId), callback);
  }

  touch(sessionId: string, session: StoredSession, callback?: Callback): void {
    settle(this.refresh(sessionId, session), callback);
  }

  /** Every session, keyed by id (needs `ids` on the server: listSessionIds). */
  all(callback: Callback<Record<string, any>>): void {
    settle(this.readAll(), callback);
  }

  /** How many sessions the server stores (from `stats`: all of them, not only this app's). */
  length(callback: Callback<number>): void {
    settle(this.pool.use(async (client) => Number((await client.stats()).sessions ?? 0)), callback);
  }

  /** Deletes every session (needs `ids` on the server: listSessionIds). */
  clear(callback?: Callback): void {
    settle(this.clearAll(), callback);
  }

  /** Every session id (needs `ids` on the server: listSessionIds). */
  ids(callback: Callback<string[]>): void {
    settle(this.pool.use((client) => client.ids()), callback);
  }

  /** express-session's `req.session.regenerate()`: drop the old session, make a fresh one. */
  regenerate(req: any, callback: Callback): void {
    this.destroy(req.sessionID, (error) => {
      this.generate?.(req);
      callback(error);
    });
  }

  /** Loads a session as an express-session Session. */
  load(sessionId: string, callback: Callback<any>): void {
    this.get(sessionId, (error, session) => {
      if (error) return callback(error);
      if (!session) return callback();
      try {
        callback(null, this.createSession({ sessionID: sessionId, sessionStore: this }, session));
      } catch (failure) {
        callback(failure);
      }
    });
  }

  /** Turns stored data into express-session's Session on `req` (what express-session's own Store does). */
  createSession(req: any, data: any): any {
    const { Cookie, Session } = this.expressSession();
    const expires = data.cookie?.expires;
    const originalMaxAge = data.cookie?.originalMaxAge;
    const cookie = new Cookie(data.cookie ?? {});
    if (typeof expires === 'string') cookie.expires = new Date(expires);
    cookie.originalMaxAge = originalMaxAge ?? null;
    data.cookie = cookie as StoredSession['cookie'];
    req.session = new Session(req, data);
    const hold = this.locking ? this.holds.get(req.sessionID) : undefined;
    if (hold) {
      // Session#reload reads through store.get, which would wait for the lock this request
      // holds; read through the held connection instead.
      Object.defineProperty(req.session, 'reload', {
        configurable: true,
        enumerable: false,
        writable: true,
        value: (done: Callback) => {
          settle(
            hold.client.getAll().then((values) => {
              const session = toSession(values);
              if (!session) throw new Error('failed to load session');
              this.createSession(req, session);
            }),
            done,
          );
        },
      });
    }
    return req.session;
  }

  /** Releases held sessions and, unless it was handed in, closes the pool. */
  async close(): Promise<void> {
    await Promise.all([...this.holds.values()].map((hold) => this.release(hold)));
    if (this.ownsPool) await this.pool.close();
  }

  // ---- The work behind them. ----

  private async read(sessionId: string): Promise<StoredSession | null> {
    if (!isValidSessionId(sessionId)) return null;
    return this.pool.use(async (client) => {
      const [opened, values] = await Promise.allSettled([client.open(sessionId, 'r'), client.getAll(), client.close()]);
      if (opened.status === 'rejected') {
        if (isServerError(opened.reason, NOT_FOUND)) return null;
        throw opened.reason;
      }
      if (values.status === 'rejected') throw values.reason;
      return toSession(values.value);
    });
  }

  /** Locking mode: open rw (waiting for other requests of this session) and keep it until save. */
  private async readHeld(sessionId: string): Promise<StoredSession | null> {
    if (!isValidSessionId(sessionId)) return null;
    const client = await this.pool.acquire();
    let held = false;
    try {
      const [opened, values] = await Promise.allSettled([client.open(sessionId, 'rw'), client.getAll()]);
      if (opened.status === 'rejected') throw opened.reason;
      if (values.status === 'rejected') throw values.reason;
      const session = toSession(values.value);
      if (!session) {
        // Unknown id (rw created it empty: drop that), or a session that is not express's: leave it be.
        await (Object.keys(values.value).length === 0 ? client.destroy() : client.close());
        return null;
      }
      const timer = setTimeout(() => void this.release(hold), this.holdTimeout);
      timer.unref();
      const hold: Hold = { sessionId, client, timer };
      this.holds.set(sessionId, hold);
      held = true;
      return session;
    } finally {
      if (!held) await this.pool.release(client);
    }
  }

  private async write(sessionId: string, session: StoredSession): Promise<void> {
    const ttl = this.ttlOf(session);
    if (ttl !== null && ttl <= 0) return this.remove(sessionId);
    const values = encodeSessionValues(JSON.parse(JSON.stringify(session)) as Record<string, unknown>);
    const hold = this.takeHold(sessionId);
    if (hold) {
      await this.finish(hold, (client) => [client.putAll(values), client.setTtl(ttl), client.close()]);
      return;
    }
    await this.pool.use((client) => all([client.open(sessionId, 'rw'), client.putAll(values), client.setTtl(ttl), client.close()]));
  }

  private async remove(sessionId: string): Promise<void> {
    const hold = this.takeHold(sessionId);
    if (hold) {
      await this.finish(hold, (client) => [client.destroy()]);
      return;
    }
    if (!isValidSessionId(sessionId)) return;
    await this.pool.use((client) => all([client.open(sessionId, 'rw'), client.destroy()]));
  }

  private async refresh(sessionId: string, session: StoredSession): Promise<void> {
    const ttl = this.ttlOf(session);
    const hold = this.takeHold(sessionId);
    if (hold) {
      await this.finish(hold, (client) => [client.setTtl(ttl === null || ttl > 0 ? ttl : 1), client.close()]);
      return;
    }
    if (!isValidSessionId(sessionId)) return;
    await this.pool.use(async (client) => {
      try {
        // Reading counts as an access, which restarts the session's lifetime; ttl also carries a changed maxAge.
        await all([client.open(sessionId, 'r'), client.setTtl(ttl === null || ttl > 0 ? ttl : 1), client.close()]);
      } catch (error) {
        if (!isServerError(error, NOT_FOUND)) throw error;
      }
    });
  }

  private async readAll(): Promise<Record<string, StoredSession>> {
    return this.pool.use(async (client) => {
      const ids = await client.ids();
      const reads = ids.map((id) => Promise.allSettled([client.open(id, 'r'), client.getAll(), client.close()]));
      const sessions: Record<string, StoredSession> = {};
      for (const [index, [opened, values]] of (await Promise.all(reads)).entries()) {
        if (opened.status === 'fulfilled' && values.status === 'fulfilled') {
          const session = toSession(values.value);
          if (session) sessions[ids[index]!] = session;
        }
      }
      return sessions;
    });
  }

  private async clearAll(): Promise<void> {
    await this.pool.use(async (client) => {
      const ids = await client.ids();
      await Promise.all(ids.map((id) => all([client.open(id, 'rw'), client.destroy()]).catch(() => {})));
    });
  }

  /** Lifetime in seconds for the server; null: the server's max lifetime. */
  private ttlOf(session: StoredSession): number | null {
    if (typeof this.ttlOption === 'function') return this.ttlOption(session);
    if (typeof this.ttlOption === 'number') return this.ttlOption;
    const expires = session.cookie?.expires;
    if (expires === undefined || expires === null) return null;
    const ms = new Date(expires).getTime() - Date.now();
    return Number.isNaN(ms) ? null : Math.ceil(ms / 1000);
  }

  private takeHold(sessionId: string): Hold | undefined {
    const hold = this.holds.get(sessionId);
    if (!hold) return undefined;
    this.holds.delete(sessionId);
    clearTimeout(hold.timer);
    return hold;
  }

  private async finish(hold: Hold, steps: (client: SessionClient) => Array<Promise<unknown>>): Promise<void> {
    try {
      await all(steps(hold.client));
    } finally {
      await this.pool.release(hold.client);
    }
  }

  private async release(hold: Hold): Promise<void> {
    if (this.holds.get(hold.sessionId) !== hold) return;
    this.takeHold(hold.sessionId);
    // Closing writes nothing (no change was sent) and frees the lock for the next request.
    await this.pool.release(hold.client);
  }

  private expressSession(): ExpressSessionModule {
    if (this.expressModule) return this.expressModule;
    for (const base of [join(process.cwd(), 'index.js'), import.meta.url]) {
      try {
        return (this.expressModule = createRequire(base)('express-session') as ExpressSessionModule);
      } catch {
        // try the next place
      }
    }
    throw new Error('SessionServerStore: express-session not found; pass it as new SessionServerStore({ expressSession: session, … })');
  }
}

/** Stored values → a session, or null when they are no express/fastify session (no cookie). */
function toSession(values: Record<string, string>): StoredSession | null {
  const session = decodeSessionValues(values) as StoredSession;
  return typeof session.cookie === 'object' && session.cookie !== null ? session : null;
}

/** Awaits pipelined requests; rejects with the first failure, after all have settled. */
async function all(requests: Array<Promise<unknown>>): Promise<void> {
  const results = await Promise.allSettled(requests);
  const failed = results.find((result) => result.status === 'rejected');
  if (failed) throw (failed as PromiseRejectedResult).reason;
}

function settle<T>(work: Promise<T>, callback: Callback<T> | undefined): void {
  work.then(
    (value) => callback?.(null, value),
    (error: unknown) => callback?.(error),
  );
}

function isServerError(error: unknown, message: string): boolean {
  return error instanceof SessionServerError && error.message === message;
}
