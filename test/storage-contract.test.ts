import test, { type ExecutionContext } from 'ava';
import { LockTable, LockTimeoutError, type LockManager, type SessionServerConfig, type SessionStore } from '../lib/index.js';
import { LockWaitAbortedError } from '../lib/core/errors.js';
import { openStore, postgresConfig, redisConfig, sleep } from './fixtures/stores.js';
import { tempDir } from './support/server.js';

/**
 * The SessionStore and LockManager contract, run against every driver. A new driver is
 * proven by one more line here: a name and the configuration of a fresh, empty store.
 * `sharesData`: two store instances made from one configuration see the same sessions.
 */
const DRIVERS: Array<{ name: string; config: (t: ExecutionContext) => Promise<SessionServerConfig>; sharesData?: true }> = [
  { name: 'memory', config: async () => ({ storage: 'memory' }) },
  { name: 'filesystem', config: async (t) => ({ storage: 'filesystem', savePath: await tempDir(t) }), sharesData: true },
  { name: 'redis', config: (t) => redisConfig(t), sharesData: true },
  { name: 'postgres', config: (t) => postgresConfig(t), sharesData: true },
];

/** The writer locks the server would use with this store. */
const locksOf = (store: SessionStore): LockManager => store.locks ?? new LockTable();

const values = (entries: Record<string, string>) => new Map(Object.entries(entries));
const asObject = (data: ReadonlyMap<string, string> | undefined) => (data ? Object.fromEntries(data) : data);

for (const driver of DRIVERS) {
  type Body = (t: ExecutionContext, store: SessionStore, config: SessionServerConfig) => Promise<void>;
  const run = (body: Body) => async (t: ExecutionContext) => {
    const config = await driver.config(t);
    await body(t, await openStore(t, config), config);
  };
  const storeTest = (title: string, body: Body) => test(`${driver.name}: ${title}`, run(body));
  // Tests that measure time run alone (ava runs serial tests before the concurrent ones).
  const timedTest = (title: string, body: Body) => test.serial(`${driver.name}: ${title}`, run(body));

  // ---- Values ----

  storeTest('a missing session loads as undefined; a saved one loads with exactly its values', async (t, store) => {
    t.is(await store.load('nobody'), undefined);
    const data = values({ user: 'alice', '': 'the empty key', 'ключ': 'значение ✓ 😀', spaced: 'a b  c ' });
    await store.save('s1', data);
    t.deepEqual(asObject(await store.load('s1')), asObject(data));
    t.is(data.size, 4, 'the handed-over map is not changed');
  });

  storeTest('values keep every character: CR, LF, NUL, pipes, quotes, megabyte strings', async (t, store) => {
    const data = values({
      lines: 'one\r\ntwo\nthree\r',
      nul: 'a\u0000b\u0000',
      syntax: '|a:1:{s:1:"x";} {"json": [1]} \\ \' " =x @access',
      '=looks-like-ours': 'yes',
      '@access': 'user key named like a field',
      big: 'x'.repeat(1_000_000),
      latin1: String.fromCharCode(...Array.from({ length: 256 }, (_, i) => i)),
    });
    await store.save('bytes', data);
    t.deepEqual(asObject(await store.load('bytes')), asObject(data));
  });

  storeTest('an empty session exists; save replaces the whole session', async (t, store) => {
    await store.save('empty', new Map());
    t.deepEqual(asObject(await store.load('empty')), {});
    await store.save('s', values({ a: '1', b: '2', c: '3' }));
    await store.save('s', values({ b: 'two', d: '4' }));
    t.deepEqual(asObject(await store.load('s')), { b: 'two', d: '4' });
  });

  storeTest('thousands of keys in one session', async (t, store) => {
    const data = new Map(Array.from({ length: 5000 }, (_, i) => [`key${i}`, `value ${i}`] as [string, string]));
    await store.save('wide', data);
    const loaded = await store.load('wide');
    t.is(loaded?.size, 5000);
    t.is(loaded?.get('key4999'), 'value 4999');
  });

  storeTest('destroy, touch and count', async (t, store) => {
    t.is(await store.count(), 0);
    await store.save('a', values({ x: '1' }));
    await store.save('b', values({ x: '2' }));
    t.is(await store.count(), 2);
    t.true(await store.touch('a'));
    t.false(await store.touch('nobody'));
    t.true(await store.destroy('a'));
    t.false(await store.destroy('a'));
    t.is(await store.load('a'), undefined);
    t.false(await store.touch('a'));
    t.is(await store.count(), 1);
    t.deepEqual(asObject(await store.load('b')), { x: '2' });
  });

  storeTest('concurrent saves of different sessions all land', async (t, store) => {
    await Promise.all(Array.from({ length: 100 }, (_, i) => store.save(`c${i}`, values({ i: String(i) }))));
    t.is(await store.count(), 100);
    const loaded = await Promise.all(Array.from({ length: 100 }, (_, i) => store.load(`c${i}`)));
    t.deepEqual(
      loaded.map((data) => data?.get('i')),
      Array.from({ length: 100 }, (_, i) => String(i)),
    );
  });

  // ---- Expiry ----

  timedTest('collect deletes sessions idle longer than maxIdleMs; load and touch count as access', async (t, store) => {
    await store.save('idle', values({ x: '1' }));
    await store.save('loaded', values({ x: '1' }));
    await store.save('touched', values({ x: '1' }));
    await store.save('held', values({ x: '1' }));
    // File mtimes have coarse resolution on some file systems: keep the gaps wide.
    await sleep(400);
    await store.load('loaded');
    await store.touch('touched');
    t.is(await store.collect(200, (id) => id === 'held'), 1);
    t.is(await store.load('idle'), undefined);
    t.truthy(await store.load('loaded'));
    t.truthy(await store.load('touched'));
    t.truthy(await store.load('held'), 'held sessions are spared');
    t.is(await store.count(), 3);
    t.is(await store.collect(60_000, () => false), 0, 'nothing is idle for a minute');
  });

  storeTest('collect walks many idle sessions', async (t, store) => {
    await Promise.all(Array.from({ length: 1200 }, (_, i) => store.save(`many${i}`, values({ i: String(i) }))));
    await sleep(50);
    const held = new Set(['many7', 'many700', 'many1199']);
    t.is(await store.collect(0, (id) => held.has(id)), 1197);
    t.is(await store.count(), 3);
  });

  timedTest('own lifetime: gone for every reader once it passes, kept by save, removed by null', async (t, store) => {
    if (!store.setLifetime || !store.expiry) {
      t.pass(`${driver.name} has no per-session lifetimes`);
      return;
    }
    t.false(await store.setLifetime('nobody', 10));
    await store.save('short', values({ v: '1' }));
    await store.save('long', values({ v: '1' }));
    await store.save('back', values({ v: '1' }));
    t.true(await store.setLifetime('short', 1));
    t.true(await store.setLifetime('long', 3600));
    t.true(await store.setLifetime('back', 1));
    t.true(await store.setLifetime('back', null));
    await store.save('short', values({ v: '2' }));
    t.is((await store.expiry('short'))?.lifetime, 1, 'save keeps the lifetime');
    t.is((await store.expiry('long'))?.lifetime, 3600);
    t.is((await store.expiry('back'))?.lifetime, null);
    const lastAccess = (await store.expiry('long'))!.lastAccess;
    t.true(Math.abs(Date.now() - lastAccess) < 2000, 'lastAccess is now-ish');
    await sleep(1100);
    t.is(await store.load('short'), undefined);
    t.false(await store.touch('short'));
    t.false(await store.setLifetime('short', 10));
    t.is(await store.expiry('short'), undefined);
    if (store.ids) t.deepEqual((await store.ids()).sort(), ['back', 'long']);
    // The own lifetime overrides maxIdleMs both ways.
    await store.collect(0, () => false);
    t.truthy(await store.load('long'));
    t.is(await store.load('back'), undefined);
    t.is(await store.load('short'), undefined);
  });

  storeTest('ids lists every session', async (t, store) => {
    if (!store.ids) {
      t.pass(`${driver.name} cannot list ids`);
      return;
    }
    t.deepEqual(await store.ids(), []);
    for (const id of ['x1', 'x2', 'x3']) await store.save(id, values({}));
    await store.destroy('x2');
    t.deepEqual((await store.ids()).sort(), ['x1', 'x3']);
  });

  // ---- Writer locks ----

  timedTest('a writer lock excludes a second writer until released, then passes on promptly', async (t, store) => {
    const locks = locksOf(store);
    const first = await locks.acquire('s', 5000);
    const waitsBefore = locks.waits;
    let handedAt = 0;
    const second = locks.acquire('s', 5000).then((lock) => {
      handedAt = Date.now();
      return lock;
    });
    await sleep(100);
    t.is(handedAt, 0, 'still waiting');
    t.is(locks.waits, waitsBefore + 1);
    const releasedAt = Date.now();
    await first.release();
    const lock = await second;
    t.true(handedAt - releasedAt < 200, `handed on after ${handedAt - releasedAt} ms`);
    t.is(lock.sessionId, 's');
    await lock.release();
  });

  storeTest('locks of different sessions are independent', async (t, store) => {
    const locks = locksOf(store);
    const a = await locks.acquire('a', 1000);
    const b = await locks.acquire('b', 1000);
    await Promise.all([a.release(), b.release()]);
    t.pass();
  });

  timedTest('a waiter gives up after its timeout with LockTimeoutError, counted', async (t, store) => {
    const locks = locksOf(store);
    const held = await locks.acquire('s', 1000);
    const started = Date.now();
    await t.throwsAsync(locks.acquire('s', 150), { instanceOf: LockTimeoutError });
    const waited = Date.now() - started;
    t.true(waited >= 140 && waited < 1000, `waited ${waited} ms`);
    t.is(locks.timeouts, 1);
    await held.release();
    // The timed-out waiter left no trace: the lock is free.
    const again = await locks.acquire('s', 1000);
    await again.release();
  });

  storeTest('an aborted wait rejects with LockWaitAbortedError; an aborted signal does not wait', async (t, store) => {
    const locks = locksOf(store);
    const held = await locks.acquire('s', 1000);
    const controller = new AbortController();
    const waiting = locks.acquire('s', 5000, controller.signal);
    setTimeout(() => controller.abort(), 50);
    await t.throwsAsync(waiting, { instanceOf: LockWaitAbortedError });
    await t.throwsAsync(locks.acquire('s', 5000, AbortSignal.abort()), { instanceOf: LockWaitAbortedError });
    await held.release();
    const again = await locks.acquire('s', 1000);
    await again.release();
  });

  timedTest('waiters of one server are served in arrival order', async (t, store) => {
    const locks = locksOf(store);
    const held = await locks.acquire('q', 5000);
    const order: number[] = [];
    const waiters = [1, 2, 3].map(async (n) => {
      await sleep(n * 20);
      const lock = await locks.acquire('q', 5000);
      order.push(n);
      await sleep(5);
      await lock.release();
    });
    await sleep(150);
    await held.release();
    await Promise.all(waiters);
    t.deepEqual(order, [1, 2, 3]);
  });

  storeTest('release is idempotent: a second release never frees the next holder', async (t, store) => {
    const locks = locksOf(store);
    const first = await locks.acquire('s', 1000);
    await first.release();
    const second = await locks.acquire('s', 1000);
    await first.release();
    await t.throwsAsync(locks.acquire('s', 100), { instanceOf: LockTimeoutError });
    await second.release();
  });

  // ---- Two instances on one store ----

  if (driver.sharesData) {
    storeTest('two instances on one store: written via A, read via B', async (t, a, config) => {
      const b = await openStore(t, config);
      await a.save('shared', values({ by: 'a' }));
      t.deepEqual(asObject(await b.load('shared')), { by: 'a' });
      await b.save('shared', values({ by: 'b' }));
      t.deepEqual(asObject(await a.load('shared')), { by: 'b' });
      t.true(await b.destroy('shared'));
      t.is(await a.load('shared'), undefined);
    });
  }

  timedTest('distributed locks: a writer on A blocks a writer on B until released; held sessions are not collected', async (t, a, config) => {
    if (!a.locks) {
      t.pass(`${driver.name} locks only within one process`);
      return;
    }
    const b = await openStore(t, config);
    const lockA = await a.locks.acquire('s', 1000);
    await t.throwsAsync(b.locks!.acquire('s', 150), { instanceOf: LockTimeoutError });
    await a.save('s', values({ v: '1' }));
    await sleep(50);
    t.is(await b.collect(0, () => false), 0, 'write-locked on A: B does not collect it');
    const waiting = b.locks!.acquire('s', 5000);
    await sleep(50);
    const releasedAt = Date.now();
    await lockA.release();
    const lockB = await waiting;
    t.true(Date.now() - releasedAt < 200, `B got it ${Date.now() - releasedAt} ms after A released`);
    await t.throwsAsync(a.locks.acquire('s', 100), { instanceOf: LockTimeoutError });
    await lockB.release();
    await sleep(20);
    t.is(await b.collect(0, () => false), 1);
  });
}
