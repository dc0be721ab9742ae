import test from 'ava';
import { Redis } from 'ioredis';
import { ConfigError, RedisStore } from '../lib/index.js';
import { REDIS_LAYOUT_VERSION } from '../lib/storage/redis-client.js';
import { redisConfig, REDIS_URL } from './fixtures/stores.js';
import { startServer } from './support/server.js';

async function admin(t: Parameters<typeof redisConfig>[0]): Promise<Redis> {
  const redis = new Redis(REDIS_URL);
  t.teardown(() => redis.disconnect());
  return redis;
}

test('the first instance on a prefix records the key layout; the next one of the same layout runs beside it', async (t) => {
  const config = await redisConfig(t);
  const redis = await admin(t);
  const a = await startServer(t, config);
  t.is(await redis.get(`${config.redisPrefix}layout`), String(REDIS_LAYOUT_VERSION));
  const b = await startServer(t, config);
  const onA = await a.connect();
  const onB = await b.connect();
  const sid = (await onA.request('new'))!.slice(3);
  t.deepEqual(await onA.pipeline(['put who a', 'close']), ['ok', 'ok']);
  t.deepEqual(await onB.pipeline([`open ${sid} r`, 'get who']), ['ok', 'ok a']);
});

test('an instance refuses to start beside instances of another layout version, saying which and what to do', async (t) => {
  const config = await redisConfig(t);
  const redis = await admin(t);
  await redis.set(`${config.redisPrefix}layout`, String(REDIS_LAYOUT_VERSION + 1));
  const store = new RedisStore({ url: REDIS_URL, prefix: config.redisPrefix });
  const error = await t.throwsAsync(store.open(), { instanceOf: ConfigError });
  await store.close();
  t.regex(error!.message, new RegExp(`key layout ${REDIS_LAYOUT_VERSION + 1}; this instance uses layout ${REDIS_LAYOUT_VERSION}`));
  t.regex(error!.message, /must not run side by side: stop the other instances first/);
  t.is(await redis.get(`${config.redisPrefix}layout`), String(REDIS_LAYOUT_VERSION + 1), 'the other version is left as it was');
  // A server does not start on it either.
  await t.throwsAsync(startServer(t, config), { message: /must not run side by side/ });
});

test('a prefix that layout 1 (one shared access index, no layout key) used is refused until that index is deleted', async (t) => {
  const config = await redisConfig(t);
  const redis = await admin(t);
  const oldIndex = `${config.redisPrefix}access`;
  await redis.zadd(oldIndex, Date.now(), 'an-old-session-id-0123456789');
  const store = new RedisStore({ url: REDIS_URL, prefix: config.redisPrefix });
  const error = await t.throwsAsync(store.open(), { instanceOf: ConfigError });
  await store.close();
  t.regex(error!.message, /key layout 1 \(the key .*access exists\)/);
  t.true(error!.message.includes(`delete the key ${oldIndex}`), error!.message);
  // Once the old instances are gone and their index deleted, the new layout starts.
  await redis.del(oldIndex);
  const c = await (await startServer(t, config)).connect();
  t.regex((await c.request('new'))!, /^ok /);
});
