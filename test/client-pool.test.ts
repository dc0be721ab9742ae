import test from 'ava';
import { PoolTimeoutError, SessionPool, type SessionClient, type SessionPoolOptions } from '../lib/index.js';
import { startServer } from './support/server.js';
import { until } from './support/wait.js';

// The connection pool against a real server: limits, waits, returns, health checks.

function pool(t: Parameters<typeof startServer>[0], options: SessionPoolOptions): SessionPool {
  const p = new SessionPool(options);
  t.teardown(() => p.close());
  return p;
}

test('the pool never opens more than max; a borrower waits, gets the returned connection, or times out', async (t) => {
  const { port, server } = await startServer(t);
  const p = pool(t, { port, max: 2, acquireTimeout: 150 });
  const a = await p.acquire();
  const b = await p.acquire();
  t.not(a, b);
  t.is(p.size, 2);
  // A third borrower queues (no third connection is opened) and its timer ends the wait.
  const third = p.acquire();
  t.is(p.waiting, 1);
  await t.throwsAsync(third, { instanceOf: PoolTimeoutError });
  t.is(p.waiting, 0);
  t.is(server.connections.size, 2);

  const waiting = p.acquire();
  t.is(p.waiting, 1);
  await p.release(a);
  t.is(await waiting, a, 'the waiter got the returned connection');
  await p.release(a);
  await p.release(b);
  t.is(p.idleCount, 2);
  t.is(p.lentCount, 0);
  // Reused, not reopened.
  const again = await p.acquire();
  t.true(again === a || again === b);
  t.is(server.connections.size, 2);
  await p.release(again);
});

test('use() returns the connection even when the task throws, and closes a session left open (writing it)', async (t) => {
  const { port, connect } = await startServer(t);
  const p = pool(t, { port, max: 1 });
  const sid = await p.use(async (client) => {
    const id = await client.create();
    await client.put('cart', '3 items');
    return id; // no close: the pool closes it on return
  });
  t.is(p.idleCount, 1);
  // The lock is free and the value written: another connection opens rw without waiting.
  const raw = await connect();
  t.deepEqual(await raw.pipeline([`open ${sid} rw`, 'get cart', 'close']), ['ok', 'ok 3 items', 'ok']);

  await t.throwsAsync(p.use(async () => {
    throw new Error('handler failed');
  }), { message: 'handler failed' });
  t.is(p.idleCount, 1);
  t.is(p.lentCount, 0);
});

test('writers on pooled connections serialize on a session, as each connection owns its lock', async (t) => {
  const { port, connect } = await startServer(t);
  const p = pool(t, { port, max: 8 });
  const setup = await connect();
  const sid = (await setup.request('new'))!.slice(3);
  t.deepEqual(await setup.pipeline(['put n 0', 'close']), ['ok', 'ok']);
  const increment = (client: SessionClient) => async () => {
    await client.open(sid, 'rw');
    const n = Number(await client.get('n'));
    await new Promise((resolve) => setTimeout(resolve, 5));
    await client.put('n', n + 1);
    await client.close();
  };
  await Promise.all(Array.from({ length: 8 }, () => p.use((client) => increment(client)())));
  t.deepEqual(await setup.pipeline([`open ${sid} r`, 'get n']), ['ok', 'ok 8']);
  t.true(p.size <= 8);
});

test('health checks: a connection that died while idle is replaced before it is lent', async (t) => {
  const { port, server } = await startServer(t);
  const p = pool(t, { port, max: 2, healthCheckAfter: 0 });
  const first = await p.acquire();
  await p.release(first);
  const noticed = new Promise((resolve) => first.once('disconnect', resolve));
  for (const connection of server.connections) connection.socket.destroy();
  await noticed;
  const next = await p.acquire();
  t.not(next, first);
  t.is(await next.ping(), 'pong');
  await p.release(next);

  // A connection that breaks while lent is dropped on return, and its slot refilled for a waiter.
  const p2 = pool(t, { port, max: 1, acquireTimeout: 2000 });
  const lent = await p2.acquire();
  const waiter = p2.acquire();
  lent.disconnect();
  await p2.release(lent);
  const fresh = await waiter;
  t.not(fresh, lent);
  t.is(await fresh.ping(), 'pong');
  await p2.release(fresh);
  t.is(p2.size, 1);
});

test('idle connections are closed after idleTimeout; a closed pool refuses borrowers', async (t) => {
  const { port, server } = await startServer(t);
  const p = pool(t, { port, max: 3, idleTimeout: 300 });
  const clients = await Promise.all([p.acquire(), p.acquire(), p.acquire()]);
  for (const client of clients) {
    await client.ping(); // the server has accepted it
    await p.release(client);
  }
  t.is(server.connections.size, 3);
  t.is(p.idleCount, 3);
  await until(() => p.idleCount === 0, 'the pool closed its idle connections');
  await until(() => server.connections.size === 0, 'the server saw them go');
  t.is(p.size, 0);
  await p.close();
  await t.throwsAsync(p.acquire(), { message: 'Pool is closed' });
});
