import test, { type ExecutionContext } from 'ava';
import { Redis } from 'ioredis';
import type { RedisStore, SessionServerConfig } from '../lib/index.js';
import { startOwnRedis, type OwnRedis } from './fixtures/redis-server.js';
import { postgresAdmin, postgresConfig, POSTGRES_URL, uniqueName } from './fixtures/stores.js';
import { startTcpProxy, throughProxy, type TcpProxy } from './fixtures/tcp-proxy.js';
import { captureLogger } from './support/log-capture.js';
import { startServer } from './support/server.js';
import { track, until } from './support/wait.js';

// Storage that hangs or is gone: every command that needs it answers `err Storage unavailable`
// within storageTimeout, everything else goes on, and the server serves again by itself once
// the storage is back. The timeouts here are options (short, so the tests are quick), never
// asserted durations: a reply that never came shows as the LineClient's read timeout.

const UNAVAILABLE = 'err Storage unavailable';
// Long enough that a `ping` on a second connection is surely answered while the first waits.
const STORAGE_TIMEOUT = 1500;
// A read that outlives storageTimeout many times over: a hang, not a slow reply.
const READ_TIMEOUT = 20_000;

/** The log lines of an outage: the one warning, the one info line, and anything logged as an error (with a stack). */
function outageLog(lines: () => Array<Record<string, any>>) {
  const all = lines();
  return {
    warnings: all.filter((line) => line.msg === 'storage unavailable'),
    recoveries: all.filter((line) => line.msg === 'storage available again'),
    errors: all.filter((line) => line.level >= 50),
  };
}

/** SIGSTOP/SIGCONT a Redis of the test's own: it keeps its connections open and answers nothing. */
async function freezable(t: ExecutionContext, own: OwnRedis): Promise<{ freeze(): void; thaw(): void }> {
  const probe = new Redis(own.url, { lazyConnect: true });
  await probe.connect();
  const pid = Number(/process_id:(\d+)/.exec(await probe.info('server'))![1]);
  probe.disconnect();
  const thaw = () => {
    try {
      process.kill(pid, 'SIGCONT');
    } catch {
      // Gone already.
    }
  };
  t.teardown(thaw);
  return { freeze: () => process.kill(pid, 'SIGSTOP'), thaw };
}

async function redisServer(t: ExecutionContext, own: OwnRedis, extra: SessionServerConfig = {}) {
  const log = captureLogger('info');
  const config: SessionServerConfig = {
    storage: 'redis',
    redisUrl: own.url,
    redisPrefix: `faults:${uniqueName()}:`,
    gcInterval: 0,
    storageTimeout: STORAGE_TIMEOUT,
    logger: log.logger,
    ...extra,
  };
  return { ...(await startServer(t, config)), log };
}

/** A PostgreSQL store reached through a proxy the test can pause (a frozen server) and cut. */
async function postgresServer(t: ExecutionContext, extra: SessionServerConfig = {}) {
  const proxy = await startTcpProxy(t, Number(new URL(POSTGRES_URL).port || 5432));
  const log = captureLogger('info');
  const config: SessionServerConfig = {
    ...(await postgresConfig(t)),
    postgresUrl: throughProxy(POSTGRES_URL, proxy),
    gcInterval: 0,
    storageTimeout: STORAGE_TIMEOUT,
    logger: log.logger,
    ...extra,
  };
  const running = await startServer(t, config);
  // Teardowns run last-registered first: forwarding resumes before the server closes.
  t.teardown(() => proxy.resume());
  return { ...running, log, proxy, table: config.postgresTable! };
}

test('Redis frozen: commands that need it answer err Storage unavailable, the rest goes on, and it serves again once Redis thaws', async (t) => {
  const own = await startOwnRedis(t);
  const redis = await freezable(t, own);
  const { connect, log } = await redisServer(t, own);
  const writer = await connect();
  const sid = (await writer.request('new'))!.slice(3);
  t.deepEqual(await writer.pipeline(['put color blue', 'close', `open ${sid} r`]), ['ok', 'ok', 'ok']);

  redis.freeze();
  const other = await connect();
  const opening = track(other.request(`open ${sid} rw`, READ_TIMEOUT));
  // The server answers while that open waits for Redis: a session already loaded needs no storage.
  t.is(await writer.request('ping'), 'ok pong');
  t.is(await writer.request('get color'), 'ok blue');
  t.false(opening.settled, 'the open is still waiting for Redis');
  t.is(await opening.promise, UNAVAILABLE);
  // Every command that needs Redis fails the same way; the others do not.
  t.deepEqual(await other.pipeline([`open ${sid} r`, 'new', 'stats', 'ping', 'help ping']), [
    UNAVAILABLE,
    UNAVAILABLE,
    UNAVAILABLE,
    'ok pong',
    'ok ping - check the connection; replies pong',
  ]);

  redis.thaw();
  await until(async () => (await other.request(`open ${sid} rw`, READ_TIMEOUT)) === 'ok', 'the server writes to Redis again');
  t.deepEqual(await other.pipeline(['put color green', 'close', `open ${sid} r`, 'get color']), ['ok', 'ok', 'ok', 'ok green']);

  const { warnings, recoveries, errors } = outageLog(log.lines);
  t.is(warnings.length, 1, 'one warning for the whole outage');
  t.is(warnings[0]!.level, 40);
  t.is(warnings[0]!.storage, 'redis');
  t.regex(warnings[0]!.error, /\S/, 'the warning says what failed');
  t.is(recoveries.length, 1, 'one info line when it ends');
  t.is(recoveries[0]!.level, 30);
  t.true(recoveries[0]!.failures >= 4);
  t.deepEqual(errors, [], 'no stack per failed request');
});

test('Redis killed and restarted on the same port: err Storage unavailable meanwhile, then it works again without a restart', async (t) => {
  const own = await startOwnRedis(t);
  const { connect, log } = await redisServer(t, own);
  const c = await connect();
  const sid = (await c.request('new'))!.slice(3);
  t.deepEqual(await c.pipeline(['put kept yes', 'close']), ['ok', 'ok']);

  await own.kill();
  t.deepEqual(await c.pipeline([`open ${sid} r`, 'new', 'ping']), [UNAVAILABLE, UNAVAILABLE, 'ok pong']);

  await own.start();
  await until(async () => (await c.request(`open ${sid} rw`, READ_TIMEOUT)) === 'ok', 'the server uses Redis again');
  t.deepEqual(await c.pipeline(['get kept', 'put more 1', 'close']), ['ok yes', 'ok', 'ok']);
  const { warnings, recoveries, errors } = outageLog(log.lines);
  t.is(warnings.length, 1);
  t.is(recoveries.length, 1);
  t.deepEqual(errors, []);
});

test('Redis down when a writer closes: the writer gets err, and its lock expires with its lease instead of staying held', async (t) => {
  const own = await startOwnRedis(t);
  const lockLease = 1000;
  const { connect, server } = await redisServer(t, own, { lockLease, lockTimeout: 30_000 });
  const writer = await connect();
  const sid = (await writer.request('new'))!.slice(3);
  t.deepEqual(await writer.pipeline(['put a 1', 'close', `open ${sid} rw`, 'put a 2']), ['ok', 'ok', 'ok', 'ok']);

  await own.kill();
  t.is(await writer.request('close', READ_TIMEOUT), UNAVAILABLE);
  t.is(await writer.request('get a'), 'err No session opened.', 'the connection let go of the session');

  // The append-only file brings the lock back with Redis: it carries an expiry, never none.
  await own.start();
  const probe = new Redis(own.url);
  t.teardown(() => probe.disconnect());
  t.not(await probe.pttl((server.store as RedisStore).keys.lock(sid)), -1, 'the lock expires by itself');

  // Another writer gets the session once the server has reconnected (until then: Storage unavailable).
  const other = await connect();
  await until(async () => (await other.request(`open ${sid} rw`, READ_TIMEOUT)) === 'ok', 'another writer gets the session');
  t.is(await other.request('get a'), 'ok 1', 'the write that got err did not land, the acknowledged one did');
});

test('PostgreSQL frozen: err Storage unavailable instead of a hang, ping goes on; connections cut and restored: it works again by itself', async (t) => {
  const { connect, log, proxy } = await postgresServer(t);
  const writer = await connect();
  const sid = (await writer.request('new'))!.slice(3);
  t.deepEqual(await writer.pipeline(['put color blue', 'close', `open ${sid} r`]), ['ok', 'ok', 'ok']);

  proxy.pause();
  const other = await connect();
  const opening = track(other.request(`open ${sid} rw`, READ_TIMEOUT));
  t.is(await writer.request('ping'), 'ok pong');
  t.is(await writer.request('get color'), 'ok blue');
  t.false(opening.settled, 'the open is still waiting for PostgreSQL');
  t.is(await opening.promise, UNAVAILABLE);
  t.deepEqual(await other.pipeline([`open ${sid} r`, 'new', 'ping']), [UNAVAILABLE, UNAVAILABLE, 'ok pong']);

  // PostgreSQL restarted: every connection the server had is gone, new ones work.
  proxy.cut();
  proxy.resume();
  await until(async () => (await other.request(`open ${sid} rw`, READ_TIMEOUT)) === 'ok', 'the server uses PostgreSQL again');
  t.deepEqual(await other.pipeline(['put color green', 'close']), ['ok', 'ok']);
  // More clients at once than the pool has connections: no broken connection is handed out again.
  const clients = await Promise.all(Array.from({ length: 15 }, () => connect()));
  const replies = await Promise.all(clients.map((c) => c.pipeline([`open ${sid} r`, 'get color'])));
  t.deepEqual(replies, clients.map(() => ['ok', 'ok green']));

  const { warnings, recoveries, errors } = outageLog(log.lines);
  t.is(warnings.length, 1);
  t.is(warnings[0]!.storage, 'postgres');
  t.is(recoveries.length, 1);
  t.deepEqual(errors, []);
});

test('PostgreSQL frozen when a writer closes: the writer gets err, and its lock row expires with its lease', async (t) => {
  const lockLease = 1000;
  const { connect, proxy, table } = await postgresServer(t, { lockLease, lockTimeout: 30_000 });
  const writer = await connect();
  const sid = (await writer.request('new'))!.slice(3);
  t.deepEqual(await writer.pipeline(['put a 1', 'close', `open ${sid} rw`, 'put a 2']), ['ok', 'ok', 'ok', 'ok']);

  proxy.pause();
  t.is(await writer.request('close', READ_TIMEOUT), UNAVAILABLE);
  proxy.cut();
  proxy.resume();

  // The row may still be there (the release never reached PostgreSQL), but with an end.
  const rows = await postgresAdmin<{ expires: boolean }>(`SELECT expires_at IS NOT NULL AS expires FROM ${table}_locks WHERE id = $1`, [sid]);
  t.true(rows.every((row) => row.expires));
  const other = await connect();
  t.is(await other.request(`open ${sid} rw`, READ_TIMEOUT), 'ok');
  t.is(await other.request('get a'), 'ok 1');
});
