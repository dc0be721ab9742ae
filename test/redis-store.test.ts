import test from 'ava';
import { Cluster, Redis } from 'ioredis';
import { ConfigError, RedisStore, type SessionServerConfig } from '../lib/index.js';
import { createRedisClient } from '../lib/storage/redis-client.js';
import { startOwnRedis } from './fixtures/redis-server.js';
import { deleteRedisKeys, openStore, redisConfig, REDIS_URL, uniqueName } from './fixtures/stores.js';
import { startServer } from './support/server.js';
import { track, until, writersQueued } from './support/wait.js';

test('a session is one hash under a hash-tagged key, expiring by itself after the max lifetime', async (t) => {
  const config = await redisConfig(t);
  const { server, connect } = await startServer(t, { ...config, maxLifetime: 60 });
  const store = server.store as RedisStore;
  const c = await connect();
  const sid = (await c.request('new'))!.slice(3);
  t.deepEqual(await c.pipeline(['put user alice', 'put  whole session', 'close']), ['ok', 'ok', 'ok']);
  const shard = store.keys.shardOf(sid);
  const key = `${config.redisPrefix}{${shard}}:${sid}`;
  t.is(store.keys.data(sid), key);
  const hash = await store.client.hgetall(key);
  t.deepEqual(Object.keys(hash).sort(), ['=', '=user', '@access', '@writer']);
  t.is(hash['=user'], 'alice');
  t.is(hash['='], 'whole session', 'the empty key');
  const ttl = await store.client.pttl(key);
  t.true(ttl > 58_000 && ttl <= 60_000, `pttl ${ttl}`);
  t.is(await store.client.zscore(`${config.redisPrefix}{${shard}}access`, sid), hash['@access']!, "the index of the session's shard, on its slot");
  // `ttl` gives the session its own expiry, in Redis too.
  t.deepEqual(await c.pipeline([`open ${sid} rw`, 'ttl 5', 'close']), ['ok', 'ok', 'ok']);
  t.true((await store.client.pttl(key)) <= 5000);
});

test('Redis itself deletes sessions idle past the max lifetime, with no sweep running', async (t) => {
  const config = await redisConfig(t);
  // Two seconds: room for a slow machine between the close and the checks of the live key.
  const { server, connect } = await startServer(t, { ...config, maxLifetime: 2, gcInterval: 0 });
  const store = server.store as RedisStore;
  const c = await connect();
  const sid = (await c.request('new'))!.slice(3);
  t.deepEqual(await c.pipeline(['put a 1', 'close']), ['ok', 'ok']);
  t.is(await store.client.exists(store.keys.data(sid)), 1);
  const pttl = await store.client.pttl(store.keys.data(sid));
  t.true(pttl > 0 && pttl <= 2000, `the key carries its own expiry, the max lifetime: pttl ${pttl}`);
  await until(async () => (await store.client.exists(store.keys.data(sid))) === 0, 'Redis expired the session key');
  t.is(await c.request(`open ${sid} r`), 'err Could not open session.');
});

test('the store refuses an invalid id before it becomes part of a key', async (t) => {
  const store = await openStore(t, await redisConfig(t));
  for (const id of ['x{tag}', 'a*', '../x', '', 'a b']) {
    await t.throwsAsync(store.load(id), { message: /invalid session id/ }, id);
    await t.throwsAsync(store.save(id, new Map()), { message: /invalid session id/ }, id);
  }
  await t.throwsAsync(store.locks!.acquire('x}{', 100), { message: /invalid session id/ });
});

test('several deployments share one Redis through their prefixes', async (t) => {
  const one = await openStore(t, await redisConfig(t));
  const two = await openStore(t, await redisConfig(t));
  await one.save('same', new Map([['who', 'one']]));
  t.is(await two.load('same'), undefined);
  t.is(await two.count(), 0);
  t.is(await two.collect(0, () => false), 0);
  t.is(await one.count(), 1);
  t.throws(() => new RedisStore({ prefix: 'bad{prefix}' }), { instanceOf: ConfigError });
  t.throws(() => new RedisStore({ prefix: 'glob*' }), { instanceOf: ConfigError });
});

test('Redis URLs: single server, Sentinel, Cluster; bad ones are refused without echoing secrets', (t) => {
  const single = createRedisClient('rediss://user:pw@cache.example:6380/3');
  t.true(single instanceof Redis);
  t.like((single as Redis).options, { host: 'cache.example', port: 6380, db: 3, username: 'user', password: 'pw' });
  t.truthy((single as Redis).options.tls);

  const sentinel = createRedisClient('redis+sentinel://:s3cret@10.0.0.1:26379,10.0.0.2,[::1]:26380/mymaster/2?sentinelPassword=sp');
  t.true(sentinel instanceof Redis);
  t.like((sentinel as Redis).options, { name: 'mymaster', db: 2, password: 's3cret', sentinelPassword: 'sp' });
  t.deepEqual((sentinel as Redis).options.sentinels, [
    { host: '10.0.0.1', port: 26379 },
    { host: '10.0.0.2', port: 6379 },
    { host: '::1', port: 26380 },
  ]);

  const cluster = createRedisClient('redis+cluster://app:pw@node1:7000,node2:7001');
  t.true(cluster instanceof Cluster);
  t.deepEqual((cluster as unknown as { startupNodes: unknown }).startupNodes, [
    { host: 'node1', port: 7000 },
    { host: 'node2', port: 7001 },
  ]);
  t.like((cluster as Cluster).options.redisOptions, { username: 'app', password: 'pw' });

  for (const bad of ['http://user:hunter2@x', 'redis+sentinel://:hunter2@h1:26379', 'redis+cluster://:hunter2@h1:7000/1', 'redis+cluster://:hunter2@h1:x']) {
    const error = t.throws(() => createRedisClient(bad), { instanceOf: ConfigError }, bad);
    t.false(error!.message.includes('hunter2'), error!.message);
  }
});

test('a store that cannot reach Redis fails to open with one clear error', async (t) => {
  const store = new RedisStore({ url: 'redis://127.0.0.1:1' });
  await t.throwsAsync(store.open(), { message: /cannot connect to Redis: .*ECONNREFUSED/ });
  await store.close();
});

test('Redis Cluster: the keys of a session share a slot, so every script runs (a one-node cluster)', async (t) => {
  const own = await startOwnRedis(t, ['--cluster-enabled', 'yes', '--cluster-config-file', 'nodes.conf', '--cluster-announce-ip', '127.0.0.1']);
  const admin = new Redis(own.port, '127.0.0.1');
  t.teardown(() => admin.disconnect());
  await admin.call('CLUSTER', 'ADDSLOTSRANGE', '0', '16383');
  await until(async () => String(await admin.call('CLUSTER', 'INFO')).includes('cluster_state:ok'), 'the one-node cluster is ready');
  const config: SessionServerConfig = { storage: 'redis', redisUrl: `redis+cluster://127.0.0.1:${own.port}`, redisPrefix: `c${uniqueName()}:`, gcInterval: 0, lockLease: 60_000 };
  const a = await startServer(t, config);
  const b = await startServer(t, config);
  t.true(a.server.store instanceof RedisStore && (a.server.store as RedisStore).client instanceof Cluster);
  const onA = await a.connect();
  const onB = await b.connect();
  const sid = (await onA.request('new'))!.slice(3);
  t.deepEqual(await onA.pipeline(['put user alice', 'ttl 600', 'commit', 'get user']), ['ok', 'ok', 'ok', 'ok alice']);
  t.deepEqual(await onB.pipeline([`open ${sid} r`, 'get user', 'touch', 'ttl']), ['ok', 'ok alice', 'ok', 'ok 600']);
  t.is(await onA.request(`open ${sid} rw`), 'ok');
  const waiting = track(onB.request(`open ${sid} rw`, 30_000));
  await writersQueued(b.server.sessions.locks, 1);
  t.false(waiting.settled);
  t.is(await onA.request('close'), 'ok');
  t.is(await waiting.promise, 'ok', "woken by A's release (the minute-long lease would not end in time)");
  t.deepEqual(await onB.pipeline(['regenerate_id', 'close', 'gc 0', 'stats']).then((r) => r.map((line) => line!.split(' ')[0])), ['ok', 'ok', 'ok', 'ok']);
});

test('Redis goes away and comes back: clients get err meanwhile, then both instances work again', async (t) => {
  const own = await startOwnRedis(t);
  // Leases of a minute: a waiter's own re-check is a minute away, so a waiter served within
  // its read timeout was woken by a release announcement.
  const config: SessionServerConfig = { storage: 'redis', redisUrl: own.url, redisPrefix: 'outage:', gcInterval: 0, lockLease: 60_000 };
  t.teardown(() => deleteRedisKeys(own.url, 'outage:'));
  const a = await startServer(t, config);
  const b = await startServer(t, config);
  const onA = await a.connect();
  const onB = await b.connect();
  const sid = (await onA.request('new'))!.slice(3);
  t.deepEqual(await onA.pipeline(['put kept yes', 'close']), ['ok', 'ok']);

  await own.kill();
  // storageTimeout bounds the wait for an answer that cannot come; the read timeout is only a safety net.
  t.is(await onB.request(`open ${sid} r`, 20_000), 'err Storage unavailable');

  await own.start();
  // Each instance reconnects on its own schedule (backoff of at most two seconds).
  await until(async () => (await onB.request(`open ${sid} r`)) === 'ok', 'B reads from Redis again');
  t.is(await onB.request('get kept'), 'ok yes', 'the append-only file kept the session');
  await until(async () => (await onA.request(`open ${sid} rw`)) === 'ok', 'A writes to Redis again');
  // The release subscriptions work again: B waits for A and is woken by A's release.
  const waiting = track(onB.request(`open ${sid} rw`, 30_000));
  await writersQueued(b.server.sessions.locks, 1);
  t.false(waiting.settled);
  t.is(await onA.request('close'), 'ok');
  t.is(await waiting.promise, 'ok');
});

test('the shared Redis of the machine is reachable (tests never skip)', async (t) => {
  const redis = new Redis(REDIS_URL, { lazyConnect: true });
  redis.on('error', () => {});
  await redis.connect();
  t.is(await redis.ping(), 'PONG');
  redis.disconnect();
});
