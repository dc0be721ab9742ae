import { createRequire } from 'node:module';
import type { AddressInfo } from 'node:net';
import type { ExecutionContext } from 'ava';
import express from 'express';
import session from 'express-session';
import { SessionServerStore, type SessionServerStoreOptions } from '../../lib/index.js';

// An express + express-session app on a real port, with SessionServerStore on a real
// sessionserver: the routes the store tests drive.

// The signer express-session itself uses, to hand the app a cookie for an id made elsewhere (PHP).
const signature = createRequire(import.meta.url)('cookie-signature') as { sign(value: string, secret: string): string };

export const SECRET = 'secret-shared-by-the-test-apps';

export interface TestApp {
  url: string;
  store: SessionServerStore;
}

export interface TestAppOptions {
  store: SessionServerStoreOptions;
  cookie?: session.CookieOptions;
  genid?: (req: express.Request) => string;
}

export interface Reply {
  status: number;
  body: any;
  /** The session cookie the reply set (`connect.sid=…`), if it set one. */
  cookie?: string;
}

type Described = Record<string, { type: string; value: unknown }>;

export async function startExpressApp(t: ExecutionContext, options: TestAppOptions): Promise<TestApp> {
  const store = new SessionServerStore({ expressSession: session as any, ...options.store });
  const app = express();
  app.use(session({ store, secret: SECRET, resave: false, saveUninitialized: false, cookie: options.cookie ?? {}, ...(options.genid ? { genid: options.genid } : {}) }));
  const values = (req: express.Request) => req.session as unknown as Record<string, unknown>;
  app.get('/login', (req, res) => {
    values(req).user = String(req.query.user);
    res.json({ id: req.sessionID });
  });
  app.get('/whoami', (req, res) => {
    res.json({ id: req.sessionID, session: describe(values(req)) });
  });
  app.get('/set', (req, res) => {
    // Any key, `__proto__` included, as data.
    Object.defineProperty(req.session, String(req.query.key), { value: JSON.parse(String(req.query.json)), enumerable: true, writable: true, configurable: true });
    res.json({ id: req.sessionID });
  });
  app.get('/bump', (req, res) => {
    const session = values(req);
    session.node_visits = Number(session.node_visits ?? 0) + 1;
    res.json({ id: req.sessionID, session: describe(session) });
  });
  app.get('/logout', (req, res, next) => {
    req.session.destroy((error) => (error ? next(error) : res.json({ destroyed: req.sessionID })));
  });
  app.get('/regenerate', (req, res, next) => {
    const user = values(req).user;
    req.session.regenerate((error) => {
      if (error) return next(error);
      values(req).user = user;
      res.json({ id: req.sessionID });
    });
  });
  app.get('/clear', (req, res, next) => {
    req.sessionStore.clear!((error: unknown) => (error ? next(error) : res.json({ cleared: true })));
  });
  app.get('/reload', (req, res, next) => {
    values(req).user = 'changed, then reloaded';
    req.session.reload((error: unknown) => (error ? next(error) : res.json({ session: describe(values(req)) })));
  });
  return { url: await serveApp(t, app, store), store };
}

/** Serves an express app on a free port until the test ends, then closes it and its store; resolves with its URL. */
export async function serveApp(t: ExecutionContext, app: express.Express, store: { close(): Promise<void> }): Promise<string> {
  const server = app.listen(0, '127.0.0.1');
  await new Promise((resolve) => server.once('listening', resolve));
  t.teardown(async () => {
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
    await store.close();
  });
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

/** Each own value of the session (the cookie aside) with its type: what crossed the store. */
export function describe(values: Record<string, unknown>): Described {
  const out: Described = {};
  for (const [key, value] of Object.entries(values)) {
    if (key === 'cookie') continue;
    const entry = Buffer.isBuffer(value)
      ? { type: 'Buffer', value: value.toString('hex') }
      : { type: value === null ? 'null' : Array.isArray(value) ? 'array' : typeof value, value };
    Object.defineProperty(out, key, { value: entry, enumerable: true, writable: true, configurable: true });
  }
  return out;
}

/** GET with an optional cookie. */
export async function get(url: string, cookie?: string): Promise<Reply> {
  const response = await fetch(url, { headers: cookie ? { cookie } : {} });
  const setCookie = response.headers.getSetCookie().find((c) => c.startsWith('connect.sid='));
  const text = await response.text();
  let body: any = text;
  try {
    body = JSON.parse(text);
  } catch {
    // an error page: kept as text
  }
  return { status: response.status, body, cookie: setCookie?.split(';')[0] };
}

/** The signed cookie express-session expects for a session id made elsewhere. */
export function cookieFor(sessionId: string): string {
  return `connect.sid=${encodeURIComponent(`s:${signature.sign(sessionId, SECRET)}`)}`;
}

/** A Store method with a callback, as a promise. */
export function call<T>(run: (done: (error?: unknown, value?: T) => void) => void): Promise<T> {
  return new Promise<T>((resolve, reject) => run((error, value) => (error ? reject(error) : resolve(value as T))));
}
