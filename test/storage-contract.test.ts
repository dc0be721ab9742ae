import test, { type ExecutionContext } from 'ava';
import pLimit, { type LimitFunction } from 'p-limit';
import { LockTable, LockTimeoutError, type LockManager, type SessionServerConfig, type SessionStore } from '../lib/index.js';
import { LockWaitAbortedError } from '../lib/locks/errors.js';
import { openStore, postgresConfig, redisConfig, sleep } from './fixtures/stores.js';
import { tempDir } from './support/server.js';
import { track, until, writersQueued } from './support/wait.js';

/**
 * The SessionStore and LockManager contract, run against every driver. A new driver is
 * proven by one more line here: a name, the configuration of a fresh, empty store, and what
 * it shares. `sharesData`: two store instances made from one configuration see the same
 * sessions. `sharesLocks`: they also exclude each other's writers (the store brings `locks`).
 */
interface Driver {
  name: string;
  config: (t: ExecutionContext) => Promise<SessionServerConfig>;
  sharesData: boolean;
  sharesLocks: boolean;
  /** Bounds how many of this driver's tests run at once. */
  slots?: LimitFunction;
}
const DRIVERS: Driver[] = [
  { name: 'memory', config: async () => ({ storage: 'memory' }), sharesData: false, sharesLocks: false },
  { name: 'filesystem', config: async (t) => ({ storage: 'filesystem', savePath: await tempDir(t) }), sharesData: true, sharesLocks: false },
  { name: 'redis', config: (t) => redisConfig(t), sharesData: true, sharesLocks: true },
  // PostgreSQL allows 100 connections for the whole machine, and each store holds a pool and a
  // LISTEN connection: four tests at a time, small pools.
  { name: 'postgres', config: async (t) => ({ ...(await postgresConfig(t)), postgresPoolSize: 2 }), sharesData: true, sharesLocks: true, slots: pLimit(4) },
];

/** The writer locks the server would use with this store. */
const locksOf = (store: SessionStore): LockManager => store.locks ?? new LockTable();

const values = (entries: Record<string, string>) => new Map(Object.entries(entries));
const asObject = (data: ReadonlyMap<string, string> | undefined) => (data ? Object.fromEntries(data) : data);

// File systems stamp modification times with the kernel's coarse clock, up to a tick (a few
// ms) behind Date.now(); a recorded access may lie that much before the call that made it.
const CLOCK_TICK_MS = 20;

for (const driver of DRIVERS) {
  type Body = (t: ExecutionContext, store: SessionStore, config: SessionServerConfig) => Promise<void>;
  const run = (body: Body) => async (t: ExecutionContext) => {
    const test = async () => {
      const config = await driver.config(t);
      await body(t, await openStore(t, config), config);
    };
    await (driver.slots ? driver.slots(test) : test());
  };
  const storeTest = (title: string, body: Body) => test(`${driver.name}: ${title}`, run(body));
  /** A test of what only stores shared by many instances do; the others skip it, saying why. */
  const sharedTest = (title: string, body: Body) =>
    driver.sharesLocks ? test(`${driver.name}: ${title}`, run(body)) : test.skip(`${driver.name}: ${title} (skipped: ${driver.name} locks only within one process)`, run(body));

  storeTest('declares what it shares truthfully, and has every optional method', async (t, store) => {
    t.is(store.name, driver.name);
    t.is(store.locks !== undefined, driver.sharesLocks, 'brings its own locks exactly when it shares them');
    // Every driver here implements the optional methods, so the tests below call them directly.
    t.deepEqual([typeof store.setLifetime, typeof store.expiry, typeof store.ids], ['function', 'function', 'function']);
  });

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

  storeTest('collect deletes sessions idle longer than maxIdleMs; load and touch count as access', async (t, store) => {
    await store.save('idle', values({ x: '1' }));
    await store.save('loaded', values({ x: '1' }));
    await store.save('touched', values({ x: '1' }));
    await store.save('held', values({ x: '1' }));
    const savedBy = Date.now();
    await sleep(1000);
    const accessedFrom = Date.now();
    await store.load('loaded');
    await store.touch('touched');
    // The cut-off lies halfway between the saves and the accesses, however long each took:
    // what was saved is older than it, what was accessed since is newer.
    const cutOff = (savedBy + accessedFrom) / 2;
    t.is(await store.collect(Math.floor(Date.now() - cutOff), (id) => id === 'held'), 1);
    t.is(await store.load('idle'), undefined);
    t.deepEqual(asObject(await store.load('loaded')), { x: '1' });
    t.deepEqual(asObject(await store.load('touched')), { x: '1' });
    t.deepEqual(asObject(await store.load('held')), { x: '1' }, 'held sessions are spared');
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

  storeTest('own lifetime: gone for every reader once it passes, kept by save, removed by null', async (t, store) => {
    t.false(await store.setLifetime!('nobody', 10));
    await store.save('short', values({ v: '1' }));
    await store.save('long', values({ v: '1' }));
    await store.save('back', values({ v: '1' }));
    // Two seconds: room for a slow store between here and the reads that must still see it.
    t.true(await store.setLifetime!('short', 2));
    const before = Date.now();
    t.true(await store.setLifetime!('long', 3600));
    const after = Date.now();
    t.true(await store.setLifetime!('back', 2));
    t.true(await store.setLifetime!('back', null));
    await store.save('short', values({ v: '2' }));
    t.is((await store.expiry!('short'))?.lifetime, 2, 'save keeps the lifetime');
    t.is((await store.expiry!('long'))?.lifetime, 3600);
    t.is((await store.expiry!('back'))?.lifetime, null);
    const lastAccess = (await store.expiry!('long'))!.lastAccess;
    t.true(lastAccess >= before - CLOCK_TICK_MS && lastAccess <= after + 1, `lastAccess ${lastAccess} is the setLifetime call, made between ${before} and ${after}`);
    await sleep(2100);
    t.is(await store.load('short'), undefined);
    t.false(await store.touch('short'));
    t.false(await store.setLifetime!('short', 10));
    t.is(await store.expiry!('short'), undefined);
    t.deepEqual((await store.ids!()).sort(), ['back', 'long']);
    // The own lifetime overrides maxIdleMs both ways.
    await store.collect(0, () => false);
    t.deepEqual(asObject(await store.load('long')), { v: '1' });
    t.is(await store.load('back'), undefined);
    t.is(await store.load('short'), undefined);
  });

  storeTest('ids lists every session', async (t, store) => {
    t.deepEqual(await store.ids!(), []);
    for (const id of ['x1', 'x2', 'x3']) await store.save(id, values({}));
    await store.destroy('x2');
    t.deepEqual((await store.ids!()).sort(), ['x1', 'x3']);
  });

  // ---- Writer locks ----

  storeTest('a writer lock excludes a second writer until released, then passes to the queued one', async (t, store) => {
    const locks = locksOf(store);
    const first = await locks.acquire('s', 5000);
    await t.throwsAsync(locks.acquire('s', 50), { instanceOf: LockTimeoutError }, 'a second writer cannot have it');
    const waitsBefore = locks.waits;
    const second = track(locks.acquire('s', 30_000));
    await writersQueued(locks, waitsBefore + 1);
    t.false(second.settled, 'still waiting');
    await first.release();
    const lock = await second.promise;
    t.is(lock.sessionId, 's');
    t.is(locks.timeouts, 1, 'only the short wait timed out');
    await lock.release();
  });

  storeTest('locks of different sessions are independent', async (t, store) => {
    const locks = locksOf(store);
    const a = await locks.acquire('a', 1000);
    const b = await locks.acquire('b', 1000);
    t.deepEqual([a.sessionId, b.sessionId], ['a', 'b']);
    t.is(locks.waits, 0, "b was taken at once, while a's lock is held");
    await t.throwsAsync(locks.acquire('a', 50), { instanceOf: LockTimeoutError }, 'and a is really held');
    await Promise.all([a.release(), b.release()]);
  });

  storeTest('a waiter gives up after its timeout with LockTimeoutError, counted', async (t, store) => {
    const locks = locksOf(store);
    const held = await locks.acquire('s', 1000);
    await t.throwsAsync(locks.acquire('s', 150), { instanceOf: LockTimeoutError });
    // It was queued, and its wait ended by its timer.
    t.is(locks.waits, 1);
    t.is(locks.timeouts, 1);
    await held.release();
    // The timed-out waiter left no lock behind: the next writer gets it. (A shared store's
    // waiter may still have an attempt in flight, which gives a free lock straight back.)
    const again = await locks.acquire('s', 5000);
    t.is(again.sessionId, 's');
    await again.release();
  });

  storeTest('an aborted wait rejects with LockWaitAbortedError; an aborted signal does not wait', async (t, store) => {
    const locks = locksOf(store);
    const held = await locks.acquire('s', 1000);
    const controller = new AbortController();
    const waiting = locks.acquire('s', 30_000, controller.signal);
    await writersQueued(locks, 1);
    controller.abort();
    await t.throwsAsync(waiting, { instanceOf: LockWaitAbortedError });
    await t.throwsAsync(locks.acquire('s', 30_000, AbortSignal.abort()), { instanceOf: LockWaitAbortedError });
    t.is(locks.timeouts, 0);
    await held.release();
    const again = await locks.acquire('s', 1000);
    await again.release();
  });

  storeTest('waiters of one server are served in arrival order', async (t, store) => {
    const locks = locksOf(store);
    const held = await locks.acquire('q', 5000);
    const order: number[] = [];
    const waiters: Array<Promise<void>> = [];
    // Each waiter is seen queued before the next one asks: the arrival order is known.
    for (const n of [1, 2, 3]) {
      waiters.push(
        locks.acquire('q', 30_000).then(async (lock) => {
          order.push(n);
          await lock.release();
        }),
      );
      await writersQueued(locks, n);
    }
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

  sharedTest('distributed locks: a writer on A blocks a writer on B until released; held sessions are not collected', async (t, _store, config) => {
    // Leases of a minute: a waiter's own re-check (when the holder's lease would end) is a
    // minute away, so a waiter served within its 30 s timeout was woken by the release.
    const a = await openStore(t, { ...config, lockLease: 60_000 });
    const b = await openStore(t, { ...config, lockLease: 60_000 });
    const lockA = await a.locks!.acquire('s', 1000);
    await t.throwsAsync(b.locks!.acquire('s', 150), { instanceOf: LockTimeoutError });
    await a.save('s', values({ v: '1' }));
    await sleep(20);
    t.is(await b.collect(0, () => false), 0, 'write-locked on A: B does not collect it');
    const waiting = track(b.locks!.acquire('s', 30_000));
    await writersQueued(b.locks!, 2);
    t.false(waiting.settled);
    await lockA.release();
    const lockB = await waiting.promise;
    await t.throwsAsync(a.locks!.acquire('s', 100), { instanceOf: LockTimeoutError });
    await lockB.release();
    await sleep(20);
    // A's timed-out waiter may still have an attempt in flight, which takes the free lock and
    // gives it straight back: the session is collectable once nobody holds it.
    await until(async () => (await b.collect(0, () => false)) === 1, 'the released session is collected');
    t.is(await a.load('s'), undefined);
  });
}
