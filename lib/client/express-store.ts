import { EventEmitter } from 'node:events';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { SessionPool, type SessionPoolOptions } from './pool.js';
import type { SessionClient } from './session-client.js';
import { fromServerId, toServerId } from './session-id-codec.js';
import { all, destroyIfExpired, isExpired, openExisting, readStored, toSession, type StoredSession } from './stored-session.js';
import { encodeKeepingUnchanged } from './unchanged-values.js';
import { decodeSessionValues, setOwn } from './values.js';

export type { StoredSession } from './stored-session.js';

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
  readonly serverId: string;
  readonly client: SessionClient;
  readonly timer: NodeJS.Timeout;
  /** The values as stored when the hold was taken; nobody else can change them while it lasts. */
  stored: Record<string, string>;
  /** A request made it its `req.session` (express-session's createSession). */
  claimed: boolean;
}

/**
 * An express-session store (and @fastify/session store) on sessionserver. Each session's
 * top-level properties become the session's keys (see values.ts: strings as they are,
 * anything else as JSON), so PHP and other clients read the same values. The cookie's
 * expiry becomes the session's own lifetime on the server (`ttl`), and the store itself
 * treats a session whose cookie has expired as gone, as MemoryStore does.
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
  /** Locking mode: sessions held for a request, by server id. */
  private readonly holds = new Map<string, Hold>();
  /** Locking mode: the hold whose `get` callback is running now; createSession claims it for the request. */
  private delivering: Hold | null = null;

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

  /** The session, or null when it does not exist or its cookie has expired (then it is destroyed). */
  get(sessionId: string, callback: Callback<any>): void {
    if (!this.locking) {
      deliver(this.read(sessionId), callback);
      return;
    }
    this.readHeld(sessionId).then(
      (found) => process.nextTick(() => this.handOver(found, callback)),
      (error: unknown) => process.nextTick(() => callback(error)),
    );
  }

  set(sessionId: string, session: StoredSession, callback?: Callback): void {
    deliver(this.write(sessionId, session), callback);
  }

  destroy(sessionId: string, callback?: Callback): void {
    deliver(this.remove(sessionId), callback);
  }

  /** Moves the stored cookie (its expiry) and the server's ttl on; a session that is gone stays gone. */
  touch(sessionId: string, session: StoredSession, callback?: Callback): void {
    deliver(this.refresh(sessionId, session), callback);
  }

  /** Every live session, keyed by id; expired ones are destroyed (needs `ids` on the server: listSessionIds). */
  all(callback: Callback<Record<string, any>>): void {
    deliver(this.readAll(), callback);
  }

  /** How many live sessions there are: the size of `all()` (needs listSessionIds). */
  length(callback: Callback<number>): void {
    deliver(this.readAll().then((sessions) => Object.keys(sessions).length), callback);
  }

  /** Deletes every session (needs `ids` on the server: listSessionIds). */
  clear(callback?: Callback): void {
    deliver(this.clearAll(), callback);
  }

  /** The ids of every live session: the keys of `all()` (needs listSessionIds). */
  ids(callback: Callback<string[]>): void {
    deliver(this.readAll().then((sessions) => Object.keys(sessions)), callback);
  }

  /** express-session's `req.session.regenerate()`: drop the old session, make a fresh one. */
  regenerate(req: any, callback: Callback): void {
    this.destroy(req.sessionID, (error) => {
      this.generate?.(req);
      callback(error);
    });
  }

  /** Loads a session as an express-session Session, outside a request: a plain read that never holds the lock. */
  load(sessionId: string, callback: Callback<any>): void {
    deliver(
      this.read(sessionId).then((session) => (session ? this.createSession({ sessionID: sessionId, sessionStore: this }, session) : undefined)),
      callback,
    );
  }

  /** Turns stored data into express-session's Session on `req` (what express-session's own Store does). */
  createSession(req: any, data: any): any {
    const delivering = this.delivering;
    const hold = delivering && !delivering.claimed && delivering.serverId === toServerId(req.sessionID) ? delivering : undefined;
    if (hold) {
      hold.claimed = true;
      // A response that ends (or a client that leaves) without saving lets go now, not after holdTimeout.
      req.res?.once?.('close', () => void this.release(hold));
    }
    return this.buildSession(req, data, hold);
  }

  /** Releases held sessions and, unless it was handed in, closes the pool. */
  async close(): Promise<void> {
    await Promise.all([...this.holds.values()].map((hold) => this.release(hold)));
    if (this.ownsPool) await this.pool.close();
  }

  // ---- The work behind them. ----

  private buildSession(req: any, data: any, hold: Hold | undefined): any {
    const { Cookie, Session } = this.expressSession();
    data.cookie = typeof data.cookie === 'object' && data.cookie !== null ? restoreCookie(Cookie, data.cookie) : this.defaultCookie(req, Cookie);
    const session = new Session(req, data) as Record<string, unknown>;
    // Session skips keys it inherits (`constructor`, `toString`, `__proto__`, …); they are data like any other.
    for (const key of Object.keys(data)) {
      if (key in Object.prototype && !Object.hasOwn(session, key)) setOwn(session, key, data[key]);
    }
    req.session = session;
    if (hold) {
      // Session#reload reads through store.get, which would wait for the lock this request
      // holds; read through the held connection instead.
      Object.defineProperty(session, 'reload', {
        configurable: true,
        enumerable: false,
        writable: true,
        value: (done: Callback) => {
          deliver(
            (async () => {
              if (this.holds.get(hold.serverId) !== hold) throw new Error('failed to load session: its hold was released');
              hold.stored = await hold.client.getAll();
              const reloaded = toSession(hold.stored);
              if (isExpired(reloaded)) throw new Error('failed to load session');
              this.buildSession(req, reloaded, hold);
            })(),
            done,
          );
        },
      });
    }
    return session;
  }

  /** A cookie for a session that has none (written by PHP): the one express-session gives a new session of this app. */
  private defaultCookie(req: any, Cookie: ExpressSessionModule['Cookie']): object {
    if (this.generate) {
      // generate() sets sessionID and session on what it is given: a stand-in that reads
      // through to req (headers, socket), so req keeps its own. It also draws an id (unused).
      const standIn = Object.create(req) as { session?: { cookie?: object } };
      try {
        this.generate(standIn);
        if (standIn.session?.cookie) return standIn.session.cookie;
      } catch {
        // cookie options that need a real request: the plain default below
      }
    }
    return new Cookie();
  }

  private async read(sessionId: string): Promise<StoredSession | null> {
    const serverId = toServerId(sessionId);
    if (serverId === null) return null;
    return this.pool.use(async (client) => {
      const stored = await readStored(client, serverId);
      if (stored === null) return null;
      const session = toSession(stored);
      if (!isExpired(session)) return session;
      await destroyIfExpired(client, serverId);
      return null;
    });
  }

  /** Locking mode: open rw (waiting for other requests of this session) and keep it until save. */
  private async readHeld(sessionId: string): Promise<{ session: StoredSession; hold: Hold } | null> {
    const serverId = toServerId(sessionId);
    if (serverId === null) return null;
    const client = await this.pool.acquire();
    let held = false;
    try {
      const stored = await openExisting(client, serverId);
      if (stored === null) return null;
      const session = toSession(stored);
      if (isExpired(session)) {
        await client.destroy();
        return null;
      }
      const timer = setTimeout(() => void this.release(hold), this.holdTimeout);
      timer.unref();
      const hold: Hold = { serverId, client, timer, stored, claimed: false };
      this.holds.set(serverId, hold);
      held = true;
      return { session, hold };
    } finally {
      if (!held) await this.pool.release(client);
    }
  }

  /** Runs a locking-mode get's callback; a hold no request claimed in it came from outside a request and is let go. */
  private handOver(found: { session: StoredSession; hold: Hold } | null, callback: Callback<any>): void {
    this.delivering = found?.hold ?? null;
    try {
      callback(null, found?.session ?? null);
    } finally {
      this.delivering = null;
      // express-session turns its request's read into req.session (createSession) in the
      // callback; without its middleware (@fastify/session) there is no such sign, so the hold stays.
      if (found && !found.hold.claimed && this.generate) void this.release(found.hold);
    }
  }

  private async write(sessionId: string, session: StoredSession): Promise<void> {
    const serverId = storableId(sessionId);
    const ttl = this.ttlOf(session);
    const values = ownValues(session);
    const keep = (key: string) => isReservedBy(session, key);
    const hold = this.takeHold(serverId);
    if (ttl !== null && ttl <= 0) {
      await (hold ? this.finish(hold, (client) => [client.destroy()]) : this.destroyPlain(serverId));
      return;
    }
    if (hold) {
      await this.finish(hold, (client) => [client.putAll(encodeKeepingUnchanged(values, hold.stored, keep)), client.setTtl(ttl), client.close()]);
      return;
    }
    await this.pool.use(async (client) => {
      const [opened, stored] = await Promise.allSettled([client.open(serverId, 'rw'), client.getAll()]);
      if (opened.status === 'rejected') throw opened.reason;
      if (stored.status === 'rejected') throw stored.reason;
      await all([client.putAll(encodeKeepingUnchanged(values, stored.value, keep)), client.setTtl(ttl), client.close()]);
    });
  }

  private async remove(sessionId: string): Promise<void> {
    const serverId = toServerId(sessionId);
    if (serverId === null) return;
    const hold = this.takeHold(serverId);
    await (hold ? this.finish(hold, (client) => [client.destroy()]) : this.destroyPlain(serverId));
  }

  private destroyPlain(serverId: string): Promise<void> {
    return this.pool.use((client) => all([client.open(serverId, 'rw'), client.destroy()]));
  }

  private async refresh(sessionId: string, session: StoredSession): Promise<void> {
    const serverId = toServerId(sessionId);
    if (serverId === null) return;
    const ttl = this.ttlOf(session);
    const cookie = ownValues(session).cookie;
    const hold = this.takeHold(serverId);
    if (hold) {
      await this.finish(hold, (client) => this.touchSteps(client, hold.stored, cookie, ttl));
      return;
    }
    await this.pool.use(async (client) => {
      const stored = await openExisting(client, serverId);
      if (stored !== null) await all(this.touchSteps(client, stored, cookie, ttl));
    });
  }

  /** Requests that put the new cookie (and lifetime) on a session held rw, or destroy it when it has expired. */
  private touchSteps(client: SessionClient, stored: Record<string, string>, cookie: unknown, ttl: number | null): Array<Promise<unknown>> {
    if (isExpired(toSession(stored)) || (ttl !== null && ttl <= 0)) return [client.destroy()];
    const values = decodeSessionValues(stored);
    if (cookie !== undefined) setOwn(values, 'cookie', cookie);
    return [client.putAll(encodeKeepingUnchanged(values, stored)), client.setTtl(ttl), client.close()];
  }

  private async readAll(): Promise<Record<string, StoredSession>> {
    const found = await this.pool.use(async (client) => {
      const ids = await client.ids();
      const reads = await Promise.all(ids.map((id) => Promise.allSettled([client.open(id, 'r'), client.getAll(), client.close()])));
      return ids.flatMap((id, index) => {
        const [opened, values] = reads[index]!;
        return opened.status === 'fulfilled' && values.status === 'fulfilled' ? [{ id, session: toSession(values.value) }] : [];
      });
    });
    const sessions: Record<string, StoredSession> = {};
    for (const { id, session } of found) {
      const storeId = fromServerId(id);
      if (isExpired(session)) await this.pool.use((client) => destroyIfExpired(client, id));
      else if (storeId !== null) setOwn(sessions, storeId, session);
    }
    return sessions;
  }

  private async clearAll(): Promise<void> {
    // Sessions held by requests of this store go through their holds: opening them again would wait for ourselves.
    const held = [...this.holds.values()].filter((hold) => this.takeHold(hold.serverId) === hold);
    await Promise.all(held.map((hold) => this.finish(hold, (client) => [client.destroy()])));
    const cleared = new Set(held.map((hold) => hold.serverId));
    await this.pool.use(async (client) => {
      const ids = (await client.ids()).filter((id) => !cleared.has(id));
      await all(ids.map((id) => all([client.open(id, 'rw'), client.destroy()])));
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

  private takeHold(serverId: string): Hold | undefined {
    const hold = this.holds.get(serverId);
    if (!hold) return undefined;
    this.holds.delete(serverId);
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
    if (this.holds.get(hold.serverId) !== hold) return;
    this.takeHold(hold.serverId);
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

/** express-session's Store#createSession for the cookie: a Cookie with `expires` as a Date and `originalMaxAge` kept. */
function restoreCookie(Cookie: ExpressSessionModule['Cookie'], stored: { expires?: unknown; originalMaxAge?: number | null }): object {
  const { expires, originalMaxAge } = stored;
  const cookie = new Cookie(stored);
  if (typeof expires === 'string') cookie.expires = new Date(expires);
  cookie.originalMaxAge = originalMaxAge ?? null;
  return cookie;
}

/** The session's own enumerable values: what express-session and fastify store (methods and symbols are not data). */
function ownValues(session: StoredSession): Record<string, unknown> {
  return Object.fromEntries(Object.entries(session));
}

/**
 * Keys the session object cannot carry because its class uses the name (express-session's
 * `id`, `save`, `reload`, …): a value another client stored under one is kept on save.
 */
function isReservedBy(session: StoredSession, key: string): boolean {
  return key !== 'cookie' && key in session && !(key in Object.prototype);
}

function storableId(sessionId: string): string {
  const serverId = toServerId(sessionId);
  if (serverId === null) {
    throw new TypeError('SessionServerStore: this session id cannot be stored (ids outside [A-Za-z0-9,_-] may be at most 94 UTF-8 bytes, well-formed)');
  }
  return serverId;
}

/**
 * Settles a Store callback. It runs outside the promise chain, so an exception it throws
 * surfaces as an uncaught exception (as with MemoryStore) instead of a rejection nobody sees.
 */
function deliver<T>(work: Promise<T>, callback: Callback<T> | undefined): void {
  work.then(
    (value) => process.nextTick(() => callback?.(null, value)),
    (error: unknown) => process.nextTick(() => callback?.(error)),
  );
}
