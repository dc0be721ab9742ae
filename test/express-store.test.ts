import test, { type ExecutionContext } from 'ava';
import express from 'express';
import session from 'express-session';
import { SessionClient, SessionServerStore, type SessionServerStoreOptions } from '../lib/index.js';
import { serveApp } from './support/express-app.js';
import { startServer } from './support/server.js';
import { track, until, writersQueued } from './support/wait.js';

// express-session apps on real ports, sharing sessions through a real sessionserver.

declare module 'express-session' {
  interface SessionData {
    user: string;
    n: number;
    profile: { roles: string[] };
  }
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

interface App {
  url: string;
  store: SessionServerStore;
}

/**
 * One app instance: its own store (own pool) on the shared sessionserver. `/inc` reads n,
 * awaits `beforeWrite` (by default nothing), then writes n + 1: a test that wants requests to
 * interleave makes them meet there instead of hoping a delay lines them up.
 */
async function startApp(
  t: ExecutionContext,
  storeOptions: SessionServerStoreOptions,
  cookie: session.CookieOptions = {},
  beforeWrite: () => Promise<void> = async () => {},
): Promise<App> {
  const store = new SessionServerStore(storeOptions);
  const app = express();
  app.use(session({ store, secret: 'shared-secret-of-both-apps', resave: false, saveUninitialized: false, cookie }));
  app.get('/login', (req, res) => {
    req.session.user = String(req.query.user);
    req.session.profile = { roles: ['admin', 'ops'] };
    res.send('ok');
  });
  app.get('/whoami', (req, res) => {
    res.json({ user: req.session.user ?? null, profile: req.session.profile ?? null });
  });
  app.get('/inc', async (req, res) => {
    const n = req.session.n ?? 0;
    // The work between read and write where unlocked stores lose updates.
    await beforeWrite();
    req.session.n = n + 1;
    res.send(String(req.session.n));
  });
  app.get('/reload', (req, res, next) => {
    req.session.n = 999;
    req.session.reload((error) => (error ? next(error) : res.json({ n: req.session.n ?? null })));
  });
  app.get('/regenerate', (req, res, next) => {
    const user = req.session.user;
    req.session.regenerate((error) => {
      if (error) return next(error);
      req.session.user = user!;
      res.send(req.sessionID);
    });
  });
  app.get('/logout', (req, res, next) => {
    req.session.destroy((error) => (error ? next(error) : res.send('bye')));
  });
  return { url: await serveApp(t, app, store), store };
}

/** GET with an optional cookie; returns the body and the session cookie, if one was set. */
async function get(url: string, cookie?: string): Promise<{ status: number; body: string; cookie?: string }> {
  const response = await fetch(url, { headers: cookie ? { cookie } : {} });
  const setCookie = response.headers.getSetCookie().find((c) => c.startsWith('connect.sid='));
  return { status: response.status, body: await response.text(), cookie: setCookie?.split(';')[0] };
}

function sessionIdOf(cookie: string): string {
  // connect.sid=s%3A<id>.<signature>
  return decodeURIComponent(cookie.slice('connect.sid='.length)).slice(2).split('.')[0]!;
}

test('two express apps on two ports share one login through the store; values are plain keys on the server', async (t) => {
  const { port } = await startServer(t);
  const a = await startApp(t, { port });
  const b = await startApp(t, { port });
  const login = await get(`${a.url}/login?user=alice`);
  t.truthy(login.cookie);
  t.deepEqual(JSON.parse((await get(`${b.url}/whoami`, login.cookie)).body), { user: 'alice', profile: { roles: ['admin', 'ops'] } });
  t.deepEqual(JSON.parse((await get(`${b.url}/whoami`)).body), { user: null, profile: null });

  // What other clients (PHP, the CLI) see: the string as it is, the rest as JSON listed in :types.
  const client = await SessionClient.connect({ port });
  t.teardown(() => client.disconnect());
  await client.open(sessionIdOf(login.cookie!), 'r');
  t.is(await client.get('user'), 'alice');
  t.deepEqual(JSON.parse((await client.get('profile'))!), { roles: ['admin', 'ops'] });
  t.deepEqual(JSON.parse((await client.get(':types'))!), { cookie: 'json', profile: 'json' });
  t.is(JSON.parse((await client.get('cookie'))!).httpOnly, true);

  // Logging out on one app logs out on both.
  t.is((await get(`${b.url}/logout`, login.cookie)).body, 'bye');
  t.deepEqual(JSON.parse((await get(`${a.url}/whoami`, login.cookie)).body), { user: null, profile: null });
});

test("the cookie's maxAge becomes the session's ttl on the server, and the server honours it", async (t) => {
  const { port, server } = await startServer(t, { gcInterval: 0 });
  const a = await startApp(t, { port }, { maxAge: 1000 });
  const b = await startApp(t, { port }, { maxAge: 60_000 });
  const login = await get(`${a.url}/login?user=bob`);
  const id = sessionIdOf(login.cookie!);
  // The session's own lifetime is the cookie's maxAge in seconds, exactly (not the time left).
  t.is((await server.store.expiry!(id))?.lifetime, 1);
  // No sweep runs (gcInterval 0): once the second has passed, the session is gone for readers
  // all the same. Waiting asks `expiry`, which records no access (any read would restart the
  // clock); how soon it ends is not the point, that it ends without a sweep is.
  await until(async () => (await server.store.expiry!(id)) === undefined, 'the 1 s session expired');
  t.is(JSON.parse((await get(`${b.url}/whoami`, login.cookie)).body).user, null);
  const client = await SessionClient.connect({ port });
  t.teardown(() => client.disconnect());
  await t.throwsAsync(client.open(id, 'r'), { message: 'Could not open session.' });

  // An app with a long cookie sets a long ttl, and an unmodified request's touch keeps it.
  const second = await get(`${b.url}/login?user=carol`);
  await get(`${b.url}/whoami`, second.cookie);
  t.is((await server.store.expiry!(sessionIdOf(second.cookie!)))?.lifetime, 60);
  t.is(JSON.parse((await get(`${b.url}/whoami`, second.cookie)).body).user, 'carol');
});

/** A meeting point for `count` requests: each waits until all have arrived. */
function barrier(count: number): () => Promise<void> {
  let arrived = 0;
  let open: () => void;
  const opened = new Promise<void>((resolve) => (open = resolve));
  return () => {
    if (++arrived === count) open();
    return opened;
  };
}

test('plain mode: two requests of one user that overlap lose an update (as every unlocked store does)', async (t) => {
  const { port } = await startServer(t);
  // Both requests have read n before either writes: the interleaving is made, not hoped for.
  const bothRead = barrier(2);
  const one = await startApp(t, { port, locking: false }, {}, bothRead);
  const two = await startApp(t, { port, locking: false }, {}, bothRead);
  const { cookie } = await get(`${one.url}/login?user=dave`);
  const replies = await Promise.all([get(`${one.url}/inc`, cookie), get(`${two.url}/inc`, cookie)]);
  t.deepEqual(replies.map((reply) => reply.body), ['1', '1'], 'each read 0 and wrote 1');
  t.is(JSON.parse((await get(`${one.url}/whoami`, cookie)).body).user, 'dave');
  const client = await SessionClient.connect({ port });
  t.teardown(() => client.disconnect());
  await client.open(sessionIdOf(cookie!), 'r');
  t.is(await client.get('n'), '1', 'one of the two increments is lost');
});

test('locking mode: parallel requests of one user through two apps serialize like PHP and lose none', async (t) => {
  const { port, server } = await startServer(t);
  const one = await startApp(t, { port, locking: true });
  const two = await startApp(t, { port, locking: true });
  const { cookie } = await get(`${one.url}/login?user=dave`);
  const replies = await Promise.all(Array.from({ length: 10 }, (_, i) => get(`${(i % 2 ? one : two).url}/inc`, cookie)));
  t.true(replies.every((reply) => reply.status === 200), replies.map((r) => r.status).join(','));
  // Each request saw the one before it: together they counted 1 to 10, in some order.
  t.deepEqual(replies.map((reply) => Number(reply.body)).sort((a, b) => a - b), [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
  t.is((await get(`${one.url}/inc`, cookie)).body, '11');
  t.is(server.sessions.locks.timeouts, 0);
});

test('locking mode: reload reads through the held connection, regenerate and destroy release the lock', async (t) => {
  const { port, connect, server } = await startServer(t);
  const a = await startApp(t, { port, locking: true, holdTimeout: 5000 });
  const login = await get(`${a.url}/login?user=erin`);
  await get(`${a.url}/inc`, login.cookie);
  t.deepEqual(JSON.parse((await get(`${a.url}/reload`, login.cookie)).body), { n: 1 });
  t.is(server.sessions.locks.waits, 0, 'no wait for its own lock');

  const regenerated = await get(`${a.url}/regenerate`, login.cookie);
  const newId = regenerated.body;
  t.not(newId, sessionIdOf(login.cookie!));
  t.is(JSON.parse((await get(`${a.url}/whoami`, regenerated.cookie)).body).user, 'erin');
  t.is(JSON.parse((await get(`${a.url}/whoami`, login.cookie)).body).user, null);
  // Nothing is left locked: a raw client gets rw on the new session at once.
  const raw = await connect();
  t.is(await raw.request(`open ${newId} rw`), 'ok');
  t.is(await raw.request('close'), 'ok');
  t.is(server.sessions.locks.waits, 0, 'nothing ever waited');
});

test('locking mode: a request that never saves loses its hold after holdTimeout', async (t) => {
  const { port, connect, server } = await startServer(t);
  const store = new SessionServerStore({ port, locking: true, holdTimeout: 200 });
  t.teardown(() => store.close());
  const raw = await connect();
  const sid = (await raw.request('new'))!.slice(3);
  t.deepEqual(await raw.pipeline([`put cookie {"originalMaxAge":null}`, 'put :types {"cookie":"json"}', 'close']), ['ok', 'ok', 'ok']);
  const held = await new Promise((resolve, reject) => store.get(sid, (error, value) => (error ? reject(error) : resolve(value))));
  t.deepEqual(held, { cookie: { originalMaxAge: null } });
  const open = track(raw.request(`open ${sid} rw`));
  await writersQueued(server.sessions.locks, 1);
  t.false(open.settled, 'the store holds the lock');
  // Nothing else happens: only the store's hold timer can let go of it.
  t.is(await open.promise, 'ok');
  t.is(server.sessions.locks.timeouts, 0);
});

test('the rest of the Store interface: set/get/touch/destroy by callback, all, ids, length, clear', async (t) => {
  const { port } = await startServer(t, { listSessionIds: true });
  const store = new SessionServerStore({ port });
  t.teardown(() => store.close());
  const call = <T>(run: (done: (error?: unknown, value?: T) => void) => void) =>
    new Promise<T>((resolve, reject) => run((error, value) => (error ? reject(error) : resolve(value as T))));
  const cookie = { originalMaxAge: 60_000, expires: new Date(Date.now() + 60_000).toISOString(), httpOnly: true, path: '/' };
  await call((done) => store.set('sid-one', { cookie, user: 'frank', n: 7 }, done));
  await call((done) => store.set('sid-two', { cookie, user: 'grace' }, done));
  t.deepEqual(await call((done) => store.get('sid-one', done)), { cookie, user: 'frank', n: 7 });
  t.is(await call((done) => store.get('no-such-session', done)), null);
  t.is(await call((done) => store.get('../../etc/passwd', done)), null);
  await call((done) => store.touch('sid-one', { cookie }, done));
  t.deepEqual((await call<string[]>((done) => store.ids(done))).sort(), ['sid-one', 'sid-two']);
  t.is(await call((done) => store.length(done)), 2);
  const all = await call<Record<string, unknown>>((done) => store.all(done));
  t.deepEqual(Object.keys(all).sort(), ['sid-one', 'sid-two']);
  t.like(all['sid-two'], { user: 'grace' });
  await call((done) => store.destroy('sid-one', done));
  t.is(await call((done) => store.get('sid-one', done)), null);
  await call((done) => store.clear(done));
  t.is(await call((done) => store.length(done)), 0);
  // A cookie already expired: set removes the session instead of storing it.
  await call((done) => store.set('sid-three', { cookie: { ...cookie, expires: new Date(Date.now() - 1000).toISOString() } }, done));
  t.is(await call((done) => store.get('sid-three', done)), null);
});
