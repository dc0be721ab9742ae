import test from 'ava';
import { RedisStore } from '../lib/index.js';
import { fencedSaveScenario } from './fixtures/fenced-save.js';
import { measureHandOff, percentile, summarize } from './fixtures/hand-off.js';
import { openStore, redisConfig, sleep } from './fixtures/stores.js';

const redisStores = async (t: Parameters<typeof redisConfig>[0], lockLease?: number) => {
  const config = { ...(await redisConfig(t)), lockLease };
  return [(await openStore(t, config)) as RedisStore, (await openStore(t, config)) as RedisStore] as const;
};

test.serial('lock hand-off between two instances is under 50 ms at p99 on loopback', async (t) => {
  const [a, b] = await redisStores(t);
  await measureHandOff(a.locks, b.locks, 20); // warm up connections and script caches
  const latencies = await measureHandOff(a.locks, b.locks, 300);
  t.log(`redis lock hand-off: ${summarize(latencies)}`);
  t.true(percentile(latencies, 99) < 50, summarize(latencies));
});

test('a lock is a key with the owner token and a lease; the holder renews it; release deletes it', async (t) => {
  const [a] = await redisStores(t, 600);
  const lock = await a.locks.acquire('s', 1000);
  const key = a.keys.lock('s');
  t.is(await a.client.get(key), a.locks.tokenOf('s') ?? 'no token');
  const ttl = await a.client.pttl(key);
  t.true(ttl > 0 && ttl <= 600, `pttl ${ttl}`);
  await sleep(900);
  t.true((await a.client.pttl(key)) > 250, 'renewed while held, past its first lease');
  await lock.release();
  t.is(await a.client.exists(key), 0);
});

test('a holder whose lease ran out cannot write over the new holder (fenced save), nor release its lock', async (t) => {
  const [a, b] = await redisStores(t, 300);
  await fencedSaveScenario(t, a, b, (id) => a.client.del(a.keys.lock(id)));
});

test('a waiter whose release announcement never comes still gets the lock when the holder dies (lease expiry)', async (t) => {
  const [a, b] = await redisStores(t, 400);
  await a.locks.acquire('d', 1000);
  // The holder "dies": its renewals stop, and nothing is ever published.
  await a.locks.close();
  await a.client.set(a.keys.lock('d'), 'dead-owner', 'PX', 400);
  const started = Date.now();
  const lock = await b.locks.acquire('d', 5000);
  const waited = Date.now() - started;
  t.true(waited >= 300 && waited < 900, `waited ${waited} ms for a 400 ms lease`);
  await lock.release();
});
