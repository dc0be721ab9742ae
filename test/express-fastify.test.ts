import fastifyCookie from '@fastify/cookie';
import fastifySession from '@fastify/session';
import test, { type ExecutionContext } from 'ava';
import Fastify from 'fastify';
import { SessionClient, SessionServerStore, type SessionServerStoreOptions } from '../lib/index.js';
import { startServer } from './support/server.js';

// @fastify/session's store interface (get/set/destroy with callbacks) is express-session's:
// the same SessionServerStore serves it.

declare module 'fastify' {
  interface Session {
    user?: string;
    n?: number;
  }
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

async function startFastify(t: ExecutionContext, options: SessionServerStoreOptions, maxAge = 60_000): Promise<string> {
  const store = new SessionServerStore(options);
  const app = Fastify();
  await app.register(fastifyCookie);
  await app.register(fastifySession, {
    secret: 'a-secret-with-at-least-32-characters!!',
    store,
    saveUninitialized: false,
    cookie: { secure: false, maxAge },
  });
  app.get('/login', async (request) => {
    request.session.user = (request.query as { user: string }).user;
    return 'ok';
  });
  app.get('/whoami', async (request) => ({ user: request.session.user ?? null }));
  app.get('/inc', async (request) => {
    const n = request.session.n ?? 0;
    await sleep(25);
    request.session.n = n + 1;
    return String(request.session.n);
  });
  app.get('/logout', async (request) => {
    await request.session.destroy();
    return 'bye';
  });
  await app.listen({ port: 0, host: '127.0.0.1' });
  t.teardown(async () => {
    await app.close();
    await store.close();
  });
  const address = app.server.address() as { port: number };
  return `http://127.0.0.1:${address.port}`;
}

async function get(url: string, cookie?: string): Promise<{ body: string; cookie?: string }> {
  const response = await fetch(url, { headers: cookie ? { cookie } : {} });
  const setCookie = response.headers.getSetCookie().find((c) => c.startsWith('sessionId='));
  return { body: await response.text(), cookie: setCookie?.split(';')[0] };
}

test('two fastify apps share a login through SessionServerStore; the cookie maxAge becomes the ttl', async (t) => {
  const { port } = await startServer(t, { listSessionIds: true });
  const a = await startFastify(t, { port }, 90_000);
  const b = await startFastify(t, { port }, 90_000);
  const login = await get(`${a}/login?user=heidi`);
  t.truthy(login.cookie);
  t.deepEqual(JSON.parse((await get(`${b}/whoami`, login.cookie)).body), { user: 'heidi' });

  const client = await SessionClient.connect({ port });
  t.teardown(() => client.disconnect());
  const [sid] = await client.ids();
  await client.open(sid!, 'r');
  t.is(await client.get('user'), 'heidi');
  const ttl = await client.ttl();
  t.true(ttl === 89 || ttl === 90, `the cookie's 90 s, counted from the request: ttl ${ttl}`);
  await client.close();

  t.is((await get(`${b}/logout`, login.cookie)).body, 'bye');
  t.deepEqual(JSON.parse((await get(`${a}/whoami`, login.cookie)).body), { user: null });
  t.deepEqual(await client.ids(), []);
});

test('fastify in locking mode: parallel increments through two apps lose none (every request saves: rolling)', async (t) => {
  const { port } = await startServer(t);
  const a = await startFastify(t, { port, locking: true });
  const b = await startFastify(t, { port, locking: true });
  const { cookie } = await get(`${a}/login?user=ivan`);
  await Promise.all(Array.from({ length: 10 }, (_, i) => get(`${i % 2 ? a : b}/inc`, cookie)));
  t.is((await get(`${a}/inc`, cookie)).body, '11');
});
