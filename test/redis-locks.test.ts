import test from 'ava';
import { RedisStore } from '../lib/index.js';
import { fencedSaveScenario } from './fixtures/fenced-save.js';
import { openStore, redisConfig } from './fixtures/stores.js';
import { track, until, writersQueued } from './support/wait.js';

// Lock hand-off latency between instances is measured by `npm run bench` (bench/latency.ts), not asserted here.

const redisStores = async (t: Parameters<typeof redisConfig>[0], lockLease?: number) => {
  const config = { ...(await redisConfig(t)), lockLease };
  return [(await openStore(t, config)) as RedisStore, (await openStore(t, config)) as RedisStore] as const;
};

test('a lock is a key with the owner token and a lease; the holder renews it; release deletes it', async (t) => {
  const [a] = await redisStores(t, 1500);
  const lock = await a.locks.acquire('s', 1000);
  const key = a.keys.lock('s');
  t.is(await a.client.get(key), a.locks.tokenOf('s') ?? 'no token');
  let last = await a.client.pttl(key);
  t.true(last > 0 && last <= 1500, `pttl ${last}`);
  // Left alone, the time to live only falls until the key is gone; a renewal sets it back up.
  await until(async () => {
    const now = await a.client.pttl(key);
    if (now < 0) throw new Error('the lock expired: never renewed');
    const renewed = now > last;
    last = now;
    return renewed;
  }, 'a renewal of the lease');
  t.is(await a.client.get(key), a.locks.tokenOf('s') ?? 'no token', 'still ours');
  await lock.release();
  t.is(await a.client.exists(key), 0);
});

test('a holder whose lease ran out cannot write over the new holder (fenced save), nor release its lock', async (t) => {
  const [a, b] = await redisStores(t, 1500);
  await fencedSaveScenario(t, a, b, (id) => a.client.del(a.keys.lock(id)));
});

test('a waiter whose release announcement never comes still gets the lock when the holder dies (lease expiry)', async (t) => {
  const [a, b] = await redisStores(t, 1500);
  await a.locks.acquire('d', 1000);
  // The holder "dies": its renewals stop, and nothing is ever published.
  await a.locks.close();
  const key = a.keys.lock('d');
  await a.client.set(key, 'dead-owner', 'PX', 60_000);
  const waiting = track(b.locks.acquire('d', 30_000));
  await writersQueued(b.locks, 1);
  t.false(waiting.settled, 'a live lease is respected');
  t.is(await a.client.get(key), 'dead-owner');
  // Its lease runs out (no release, no announcement): B's re-check within its own lease finds it free.
  await a.client.pexpire(key, 1);
  const lock = await waiting.promise;
  t.is(await a.client.get(key), b.locks.tokenOf('d') ?? 'no token', 'B holds it now');
  await lock.release();
});
