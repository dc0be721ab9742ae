import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import test, { type ExecutionContext } from 'ava';
import { encodeSessionValues, SessionClient, type SessionServerStore } from '../lib/index.js';
import { call, cookieFor, get, startExpressApp } from './support/express-app.js';
import { until } from './support/wait.js';
import { startServer } from './support/server.js';

/**
 * express-session derives a new cookie's originalMaxAge from the clock (expires − now), so it
 * is the configured maxAge or a millisecond less when the clock ticked in between: compare seconds.
 */
const toSeconds = (ms: number | null) => (ms === null ? null : Math.round(ms / 1000));

// SessionServerStore against express-session's documented store semantics (MemoryStore is
// the reference), with express and express-session over real sockets, in plain and locking mode.

const MODES = [false, true] as const;
const modeName = (locking: boolean) => (locking ? 'locking' : 'plain');
const HOUR = 3_600_000;

function cookieExpiring(at: number, originalMaxAge: number | null = HOUR) {
  return { originalMaxAge, expires: new Date(at).toISOString(), httpOnly: true, path: '/' };
}

async function rawClient(t: ExecutionContext, port: number): Promise<SessionClient> {
  const client = await SessionClient.connect({ port });
  t.teardown(() => client.disconnect());
  return client;
}

/** The session's values as stored, read as any client would (null when it does not exist). */
async function stored(client: SessionClient, serverId: string): Promise<Record<string, string> | null> {
  try {
    await client.open(serverId, 'r');
  } catch {
    return null;
  }
  const values = await client.getAll();
  await client.close();
  return values;
}

async function storedExpires(client: SessionClient, serverId: string): Promise<string | undefined> {
  const values = await stored(client, serverId);
  return values?.cookie === undefined ? undefined : (JSON.parse(values.cookie) as { expires?: string }).expires;
}

/** Writes a session straight to the server, as another client would, with a long server ttl. */
async function plant(client: SessionClient, serverId: string, values: Record<string, unknown>): Promise<void> {
  await client.open(serverId, 'rw');
  await client.putAll(encodeSessionValues(values));
  await client.setTtl(3600);
  await client.close();
}

function storeGet(store: SessionServerStore, id: string): Promise<any> {
  return call((done) => store.get(id, done));
}

for (const locking of MODES) {
  const mode = modeName(locking);

  test(`${mode}: a session whose stored cookie has expired is absent on get and destroyed, and all/length/ids leave it out`, async (t) => {
    const { port } = await startServer(t, { listSessionIds: true });
    const { url, store } = await startExpressApp(t, { store: { port, locking } });
    const client = await rawClient(t, port);
    const future = Date.now() + HOUR;
    await call((done) => store.set('live-one', { cookie: cookieExpiring(future), user: 'ann' }, done));
    await call((done) => store.set('live-two', { cookie: cookieExpiring(future), user: 'ben' }, done));
    // The server would keep these an hour (ttl 3600): only their cookies say they are over.
    await plant(client, 'stale-one', { cookie: cookieExpiring(Date.now() - 1000), user: 'mallory' });
    await plant(client, 'stale-two', { cookie: cookieExpiring(Date.now() - 1000), user: 'mallory' });

    t.is(await call<number>((done) => store.length(done)), 2);
    t.deepEqual((await call<string[]>((done) => store.ids(done))).sort(), ['live-one', 'live-two']);
    t.deepEqual(Object.keys(await call<Record<string, unknown>>((done) => store.all(done))).sort(), ['live-one', 'live-two']);
    t.is(await stored(client, 'stale-one'), null, 'all() destroyed the expired session it met');

    // A replayed cookie of an expired session opens nothing: express-session makes a new one.
    const replay = await get(`${url}/whoami`, cookieFor('stale-two'));
    t.is(replay.status, 200);
    t.not(replay.body.id, 'stale-two');
    t.deepEqual(replay.body.session, {});
    t.is(await stored(client, 'stale-two'), null, 'get destroyed it');
    t.is(await storeGet(store, 'stale-two'), null);
    t.like(await storeGet(store, 'live-one'), { user: 'ann' });
  });

  test(`${mode}: a short maxAge ends the session while it is only read; reads leave the stored expiry as it was`, async (t) => {
    const { port } = await startServer(t, { gcInterval: 0 });
    const { url, store } = await startExpressApp(t, { store: { port, locking }, cookie: { maxAge: 3000 } });
    const client = await rawClient(t, port);
    const login = await get(`${url}/login?user=carl`);
    const sid: string = login.body.id;
    const expiresAtLogin = await storedExpires(client, sid);
    t.truthy(expiresAtLogin);

    // Read it (store.get, as an admin page or a websocket handshake would) until it is gone.
    const seen = new Set<string>();
    await until(async () => {
      const session = await storeGet(store, sid);
      if (session === null) return true;
      seen.add(String(session.cookie.expires));
      seen.add(String(await storedExpires(client, sid)));
      return false;
    }, 'the session to expire');
    t.deepEqual([...seen], [expiresAtLogin], 'no read moved the expiry');
    t.is(await stored(client, sid), null, 'and the expired session was destroyed');
    const after = await get(`${url}/whoami`, login.cookie);
    t.deepEqual(after.body.session, {});
  });

  test(`${mode}: touch moves the stored cookie's expiry and the server's ttl, so a touched session is not seen as expired`, async (t) => {
    const { port } = await startServer(t, { gcInterval: 0 });
    const { url, store } = await startExpressApp(t, { store: { port, locking }, cookie: { maxAge: HOUR } });
    const client = await rawClient(t, port);
    // Far enough ahead that the request below comes before it, even on a busy machine.
    const soon = Date.now() + 4000;
    await call((done) => store.set('touched-session-1', { cookie: cookieExpiring(soon), user: 'dora' }, done));

    // An unmodified request: express-session touches the session (resetMaxAge) instead of saving it.
    const visit = await get(`${url}/whoami`, cookieFor('touched-session-1'));
    t.is(visit.body.session.user.value, 'dora');
    const moved = Date.parse((await storedExpires(client, 'touched-session-1'))!);
    t.true(moved - soon > HOUR - 60_000, `the stored expiry moved by about an hour (${moved - soon} ms)`);
    await client.open('touched-session-1', 'r');
    t.true((await client.ttl()) > 3000, 'and the server lifetime with it');
    await client.close();

    // Once the old expiry has passed, the touched session is still there.
    await until(async () => Date.now() > soon + 100, 'the old expiry to pass');
    t.like(await storeGet(store, 'touched-session-1'), { user: 'dora' });
    t.is((await get(`${url}/whoami`, cookieFor('touched-session-1'))).body.session.user.value, 'dora');
  });

  test(`${mode}: a session without express's cookie (another client's) is adopted, given the app's cookie on the next save`, async (t) => {
    const { port } = await startServer(t, { listSessionIds: true });
    const { url } = await startExpressApp(t, { store: { port, locking }, cookie: { maxAge: HOUR } });
    const client = await rawClient(t, port);
    await plant(client, 'made-elsewhere-1', { user: 'erin', visits: 3 });
    const first = await get(`${url}/whoami`, cookieFor('made-elsewhere-1'));
    t.is(first.body.id, 'made-elsewhere-1', 'the same session, not a second one');
    t.deepEqual(first.body.session, { user: { type: 'string', value: 'erin' }, visits: { type: 'number', value: 3 } });
    const adopted = (await stored(client, 'made-elsewhere-1'))!;
    t.is(toSeconds(JSON.parse(adopted.cookie!).originalMaxAge), HOUR / 1000, "the cookie comes from the app's options");
    t.deepEqual(JSON.parse(adopted[':types']!), { visits: 'json', cookie: 'json' });

    // Emptied by another client: still that user's session.
    await client.open('made-elsewhere-1', 'rw');
    await client.putAll({});
    await client.close();
    const emptied = await get(`${url}/bump`, cookieFor('made-elsewhere-1'));
    t.is(emptied.body.id, 'made-elsewhere-1');
    t.deepEqual(emptied.body.session, { node_visits: { type: 'number', value: 1 } });
    t.deepEqual(await client.ids(), ['made-elsewhere-1']);
  });

  test(`${mode}: any id a custom genid returns works, in every method; odd ids are stored encoded`, async (t) => {
    const { port } = await startServer(t, { listSessionIds: true });
    const ids = ['a/b%c d', 'ünïcødé id', '_,looks-encoded', 'plain-id_1,x-y'];
    const queue = [...ids];
    const a = await startExpressApp(t, { store: { port, locking }, genid: () => queue.shift()! });
    const b = await startExpressApp(t, { store: { port, locking } });
    const client = await rawClient(t, port);
    const cookies: string[] = [];
    for (const [index, id] of ids.entries()) {
      const login = await get(`${a.url}/login?user=user${index}`);
      t.is(login.body.id, id);
      cookies.push(login.cookie!);
      const there = await get(`${b.url}/whoami`, login.cookie);
      t.is(there.body.id, id);
      t.is(there.body.session.user.value, `user${index}`);
    }
    const encoded = (id: string) => `_,${Buffer.from(id, 'utf8').toString('base64url')}`;
    t.deepEqual((await client.ids()).sort(), [encoded('a/b%c d'), encoded('ünïcødé id'), encoded('_,looks-encoded'), 'plain-id_1,x-y'].sort());
    t.deepEqual((await call<string[]>((done) => b.store.ids(done))).sort(), [...ids].sort());
    t.deepEqual(Object.keys(await call<Record<string, unknown>>((done) => b.store.all(done))).sort(), [...ids].sort());
    t.like(await storeGet(b.store, 'a/b%c d'), { user: 'user0' });
    await call((done) => b.store.touch('a/b%c d', { cookie: cookieExpiring(Date.now() + HOUR) }, done));

    t.deepEqual((await get(`${b.url}/logout`, cookies[0])).body, { destroyed: 'a/b%c d' });
    t.is(await storeGet(b.store, 'a/b%c d'), null);
    t.false((await client.ids()).includes(encoded('a/b%c d')));

    // Too long to encode within the server's 128 characters: refused clearly, never mixed up.
    const tooLong = `${'x'.repeat(95)}/`;
    await t.throwsAsync(call((done) => b.store.set(tooLong, { cookie: cookieExpiring(Date.now() + HOUR) }, done)), { instanceOf: TypeError, message: /cannot be stored/ });
    t.is(await storeGet(b.store, tooLong), null);
    await call((done) => b.store.destroy(tooLong, done));
  });

  test(`${mode}: keys named constructor, __proto__, toString and hasOwnProperty are data like any other`, async (t) => {
    const { port } = await startServer(t);
    const { url, store } = await startExpressApp(t, { store: { port, locking } });
    const client = await rawClient(t, port);
    const session = JSON.parse('{"constructor":"c","__proto__":{"polluted":true},"toString":"t","hasOwnProperty":7}') as Record<string, unknown>;
    session.cookie = cookieExpiring(Date.now() + HOUR);
    await call((done) => store.set('prototype-keys-1', session, done));
    const raw = (await stored(client, 'prototype-keys-1'))!;
    t.like(raw, { constructor: 'c', toString: 't', hasOwnProperty: '7' });
    t.is(raw.__proto__, '{"polluted":true}');

    const read = await storeGet(store, 'prototype-keys-1');
    t.is(Object.getPrototypeOf(read), Object.prototype);
    t.deepEqual(Object.keys(read).sort(), ['__proto__', 'constructor', 'cookie', 'hasOwnProperty', 'toString']);
    t.deepEqual(Object.getOwnPropertyDescriptor(read, '__proto__')?.value, { polluted: true });
    t.is(({} as Record<string, unknown>).polluted, undefined);

    // Through express-session: req.session carries them too, and a change to one is saved.
    const seen = await get(`${url}/whoami`, cookieFor('prototype-keys-1'));
    // (JSON.parse: in an object literal, `__proto__:` would set the prototype instead.)
    t.deepEqual(seen.body.session, JSON.parse(`{
      "constructor": { "type": "string", "value": "c" },
      "__proto__": { "type": "object", "value": { "polluted": true } },
      "toString": { "type": "string", "value": "t" },
      "hasOwnProperty": { "type": "number", "value": 7 }
    }`));
    await get(`${url}/set?key=__proto__&json=${encodeURIComponent('{"changed":1}')}`, cookieFor('prototype-keys-1'));
    const changed = (await stored(client, 'prototype-keys-1'))!;
    t.is(changed.__proto__, '{"changed":1}');
    t.like(changed, { constructor: 'c', toString: 't', hasOwnProperty: '7' });
  });

  test(`${mode}: an exception thrown by the app's store callback surfaces as an uncaught exception, as with MemoryStore`, async (t) => {
    const { port } = await startServer(t);
    const script = fileURLToPath(new URL('./fixtures/throwing-callback.ts', import.meta.url));
    const run = (store: string, scenario: string) =>
      new Promise<any>((resolve, reject) => {
        execFile(process.execPath, ['--import', 'tsx', script, String(port), store, scenario], { timeout: 30_000 }, (error, stdout, stderr) => {
          const line = stdout.trim().split('\n').pop();
          if (!line) reject(error ?? new Error(stderr));
          else resolve(JSON.parse(line));
        });
      });
    for (const scenario of ['save', 'get']) {
      const reference = await run('memory', scenario);
      t.deepEqual(reference, { event: 'uncaughtException', message: 'thrown by the app inside a store callback' }, `MemoryStore, ${scenario}`);
      t.deepEqual(await run(mode, scenario), reference, `SessionServerStore, ${scenario}`);
    }
  });

  test(`${mode}: destroy, regenerate and clear inside a request finish without waiting on a lock`, async (t) => {
    const { port } = await startServer(t, { listSessionIds: true, lockTimeout: 2000 });
    const { url, store } = await startExpressApp(t, { store: { port, locking } });
    const client = await rawClient(t, port);
    const login = await get(`${url}/login?user=finn`);
    const regenerated = await get(`${url}/regenerate`, login.cookie);
    t.is(regenerated.status, 200);
    t.not(regenerated.body.id, login.body.id);
    t.is(await stored(client, login.body.id), null);
    t.is((await get(`${url}/whoami`, regenerated.cookie)).body.session.user.value, 'finn');

    t.deepEqual((await get(`${url}/logout`, regenerated.cookie)).body, { destroyed: regenerated.body.id });
    t.is(await stored(client, regenerated.body.id), null);

    const again = await get(`${url}/login?user=gil`);
    await call((done) => store.set('someone-else', { cookie: cookieExpiring(Date.now() + HOUR), user: 'hal' }, done));
    t.deepEqual((await get(`${url}/clear`, again.cookie)).body, { cleared: true });
    t.deepEqual(await client.ids(), []);
    const stats = await client.stats();
    t.is(stats.lock_waits, '0', 'nothing waited for a lock: the request used its own hold');
    t.is(stats.lock_timeouts, '0');
  });
}

test('locking: store.get and store.load outside a request take no hold that blocks the next request', async (t) => {
  const { port } = await startServer(t, { lockTimeout: 1000 });
  const { url, store } = await startExpressApp(t, { store: { port, locking: true, holdTimeout: 60_000 } });
  const client = await rawClient(t, port);
  const login = await get(`${url}/login?user=ivy`);
  const sid: string = login.body.id;

  t.like(await storeGet(store, sid), { user: 'ivy' });
  // No request made it req.session: the store lets the lock go at once, not after holdTimeout.
  await until(async () => (await client.stats()).sessions_held === '0', 'the outside read to let go');
  const next = await get(`${url}/whoami`, login.cookie);
  t.is(next.status, 200);
  t.is(next.body.session.user.value, 'ivy');

  const loaded = await call<any>((done) => store.load(sid, done));
  t.is(loaded.user, 'ivy');
  t.is(loaded.id, sid);
  t.is((await client.stats()).sessions_held, '0', 'load reads without the lock');
  const after = await get(`${url}/bump`, login.cookie);
  t.is(after.status, 200);
  t.is(after.body.session.node_visits.value, 1);
  t.is((await client.stats()).lock_timeouts, '0');
});

test('locking: reload inside a request reads through its own hold', async (t) => {
  const { port } = await startServer(t, { lockTimeout: 1000 });
  const { url } = await startExpressApp(t, { store: { port, locking: true } });
  const client = await rawClient(t, port);
  const login = await get(`${url}/login?user=jan`);
  const reloaded = await get(`${url}/reload`, login.cookie);
  t.is(reloaded.status, 200);
  t.is(reloaded.body.session.user.value, 'jan');
  t.is((await client.stats()).lock_waits, '0');
});
