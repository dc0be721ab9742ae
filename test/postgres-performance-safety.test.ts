import test, { type ExecutionContext } from 'ava';
import pg from 'pg';
import { ConfigError, PostgresStore, type SessionServerConfig } from '../lib/index.js';
import { migrate, PostgresNames, SCHEMA_VERSION } from '../lib/storage/postgres-schema.js';
import { openStore, POSTGRES_URL, postgresAdmin, postgresConfig } from './fixtures/stores.js';
import { until } from './support/wait.js';

// The PostgreSQL driver's fast path (issue 15), proven by what PostgreSQL itself records:
// which statements a connection prepared, how many rows were updated and how (HOT or not).
// How fast it is, is for `npm run bench`.

const values = (entries: Record<string, string>) => new Map(Object.entries(entries));

/** The table's update counters, once every connection that wrote has ended (and so reported them). */
async function updates(config: SessionServerConfig): Promise<{ updated: number; hot: number }> {
  const [schema, relname] = config.postgresTable!.split('.');
  const read = async () =>
    (
      await postgresAdmin<{ updated: number; hot: number }>(
        `SELECT n_tup_upd::integer AS updated, n_tup_hot_upd::integer AS hot FROM pg_stat_user_tables WHERE schemaname = $1 AND relname = $2`,
        [schema, relname],
      )
    )[0] ?? { updated: 0, hot: 0 };
  return read();
}

/** A store with one pooled connection, closed by the caller (closing reports its statistics). */
async function singleConnectionStore(t: ExecutionContext, config: SessionServerConfig): Promise<PostgresStore> {
  return (await openStore(t, { ...config, postgresPoolSize: 1 })) as PostgresStore;
}

/** Names of the statements prepared on the store's one pooled connection. */
async function prepared(store: PostgresStore): Promise<string[]> {
  const { rows } = await store.pool.query<{ name: string }>(`SELECT name FROM pg_prepared_statements WHERE name LIKE 'sessionserver_%' ORDER BY name`);
  return rows.map((row) => row.name);
}

/** Moves a session's recorded access (an admin's write, counted once in the statistics). */
async function setLastAccess(store: PostgresStore, id: string, offset: string): Promise<void> {
  await postgresAdmin(`UPDATE ${store.names.sessions} SET last_access = now() + $2::interval WHERE id = $1`, [id, offset]);
}

/** Waits until every update so far is counted (statistics arrive when a connection ends). */
async function countedUpdates(config: SessionServerConfig, atLeast: number): Promise<{ updated: number; hot: number }> {
  let last = { updated: 0, hot: 0 };
  await until(async () => (last = await updates(config)).updated >= atLeast, `${atLeast} updates counted`);
  return last;
}

test('poolSize (postgresPoolSize) bounds the pool; the session cycle runs prepared statements, the open in one round trip', async (t) => {
  const config = await postgresConfig(t);
  const store = await singleConnectionStore(t, config);
  t.is(store.pool.options.max, 1, 'postgresPoolSize reaches the pool');
  // What a server does for `open rw` … `close`: lock (with the read), save, release.
  const lock = await store.locks.acquire('cycle', 1000);
  t.is(await store.load('cycle'), undefined);
  await store.save('cycle', values({ k: 'v' }));
  await lock.release();
  await store.locks.settled();
  t.deepEqual(await prepared(store), ['sessionserver_lock_and_load', 'sessionserver_save', 'sessionserver_unlock'], 'no separate load after the lock');
  const again = await store.locks.acquire('cycle', 1000);
  t.deepEqual(Object.fromEntries((await store.load('cycle'))!), { k: 'v' }, 'the read that came with the lock');
  await again.release();
  // Twenty reads at once still share the one connection.
  await Promise.all(Array.from({ length: 20 }, () => store.load('cycle')));
  t.is(store.pool.totalCount, 1);
  t.deepEqual(await prepared(store), ['sessionserver_load', 'sessionserver_lock_and_load', 'sessionserver_save', 'sessionserver_unlock']);
});

test('a poolSize that is not a whole number of at least 1 is refused', (t) => {
  for (const poolSize of [0, -1, 1.5, Number.NaN]) {
    t.throws(() => new PostgresStore({ poolSize }), { instanceOf: ConfigError, message: /postgresPoolSize must be a whole number/ }, String(poolSize));
  }
});

test('reads write nothing while the recorded access is fresh: read-only loads and locked opens update no row', async (t) => {
  const config = await postgresConfig(t);
  const store = await singleConnectionStore(t, config);
  await store.save('fresh', values({ k: 'v' }));
  // Recorded "in the future": fresh however slow this machine is.
  await setLastAccess(store, 'fresh', '1 hour');
  for (let i = 0; i < 10; i++) t.deepEqual(Object.fromEntries((await store.load('fresh'))!), { k: 'v' });
  for (let i = 0; i < 5; i++) {
    const lock = await store.locks.acquire('fresh', 1000);
    t.truthy(await store.load('fresh'));
    await lock.release();
  }
  await store.close();
  // The one update is the admin's.
  await countedUpdates(config, 1);
  t.is((await updates(config)).updated, 1);
});

test('a stale access is recorded by the read, as a HOT update; saves of a session are HOT too', async (t) => {
  const config = await postgresConfig(t);
  const store = await singleConnectionStore(t, config);
  await store.save('s', values({ k: 'v' }));
  for (let i = 0; i < 5; i++) {
    await setLastAccess(store, 's', '-1 hour');
    const stale = (await store.expiry('s'))!.lastAccess;
    await store.load('s');
    // The read recorded it: the last access moved on from the hour-old one set above.
    t.true((await store.expiry('s'))!.lastAccess > stale, 'the access was recorded');
  }
  for (let i = 0; i < 5; i++) await store.save('s', values({ k: `v${i}` }));
  await store.close();
  // 5 admin updates, 5 recorded reads, 5 saves (an upsert's update). The admin's moves of
  // last_access stay HOT (it is not indexed); only a read or save that lands in a new minute
  // (access_slot, which the sweep's index holds) may not be, and at most one such minute
  // boundary falls between the ones before and after it.
  const counted = await countedUpdates(config, 15);
  t.is(counted.updated, 15);
  t.true(counted.hot >= counted.updated - 2, `${counted.hot} of ${counted.updated} updates were HOT`);
});

test('an instance refuses to start beside one of another layout version, saying which', async (t) => {
  const config = await postgresConfig(t);
  const names = new PostgresNames(config.postgresTable);
  // Instances LISTEN on a channel naming their layout; versions 1 and 2 used `<table>_released`.
  for (const [channel, version] of [
    [names.releaseChannelPrefix, 2],
    [`${names.releaseChannelPrefix}_v${SCHEMA_VERSION + 1}`, SCHEMA_VERSION + 1],
  ] as const) {
    const other = new pg.Client({ connectionString: POSTGRES_URL });
    await other.connect();
    await other.query(`LISTEN "${channel}"`);
    const store = new PostgresStore({ url: POSTGRES_URL, table: config.postgresTable });
    const error = await t.throwsAsync(store.open(), { instanceOf: ConfigError });
    t.regex(error!.message, new RegExp(`another sessionserver instance is running on the PostgreSQL session tables ${config.postgresTable!.replace('.', '\\.')} with layout version ${version}`));
    t.regex(error!.message, new RegExp(`this one uses version ${SCHEMA_VERSION}\\b.*stop every instance of the other version`));
    await store.close();
    await other.end();
  }
  // Alone again (or beside its own version), it starts.
  const first = await openStore(t, config);
  const second = await openStore(t, config);
  await first.save('x', values({ a: '1' }));
  t.deepEqual(Object.fromEntries((await second.load('x'))!), { a: '1' });
});

test('an instance of another layout is refused before it migrates anything', async (t) => {
  const config = await postgresConfig(t);
  const names = new PostgresNames(config.postgresTable);
  const pool = new pg.Pool({ connectionString: POSTGRES_URL });
  t.is(await migrate(pool, names, 2), 2);
  await pool.end();
  const old = new pg.Client({ connectionString: POSTGRES_URL });
  await old.connect();
  t.teardown(() => old.end());
  await old.query(`LISTEN "${names.releaseChannelPrefix}"`);
  const store = new PostgresStore({ url: POSTGRES_URL, table: config.postgresTable });
  await t.throwsAsync(store.open(), { instanceOf: ConfigError, message: /layout version 2 \(or older\)/ });
  await store.close();
  t.deepEqual(await postgresAdmin(`SELECT version FROM ${names.version}`), [{ version: 2 }], 'the tables the running instance uses are untouched');
});

test('version 2 tables migrate to the access-slot layout, keeping sessions, lifetimes and expiry', async (t) => {
  const config = await postgresConfig(t);
  const names = new PostgresNames(config.postgresTable);
  const pool = new pg.Pool({ connectionString: POSTGRES_URL });
  await migrate(pool, names, 2);
  await pool.query(
    `INSERT INTO ${names.sessions} (id, data, last_access, lifetime) VALUES
     ('recent', '{"v":"1"}', now(), NULL), ('idle', '{"v":"2"}', now() - interval '2 hours', NULL),
     ('own', '{"v":"3"}', now() - interval '2 hours', 86400), ('ended', '{"v":"4"}', now() - interval '2 hours', 60)`,
  );
  await pool.end();
  const store = (await openStore(t, config)) as PostgresStore;
  const indexes = await postgresAdmin<{ indexname: string }>(`SELECT indexname FROM pg_indexes WHERE schemaname = $1 AND tablename = 'sessions' ORDER BY indexname`, [
    config.postgresTable!.split('.')[0],
  ]);
  t.deepEqual(
    indexes.map((row) => row.indexname),
    ['sessions_expiry_slot', 'sessions_idle_slot', 'sessions_pkey'],
    'last_access is no longer indexed',
  );
  t.is(await store.load('ended'), undefined, 'past its own lifetime');
  t.is(await store.collect(60 * 60_000, () => false), 2, 'idle for an hour without an own lifetime, and past its own');
  t.deepEqual(Object.fromEntries((await store.load('own'))!), { v: '3' });
  t.deepEqual(Object.fromEntries((await store.load('recent'))!), { v: '1' });
  t.deepEqual((await store.ids()).sort(), ['own', 'recent']);
});

test('two instances, 16 writers on one session, short leases: no increment lost', async (t) => {
  const config = await postgresConfig(t);
  const a = (await openStore(t, { ...config, lockLease: 300 })) as PostgresStore;
  const b = (await openStore(t, { ...config, lockLease: 300 })) as PostgresStore;
  await a.save('counter', values({ n: '0' }));
  let done = 0;
  const writers = Array.from({ length: 16 }, async (_, i) => {
    const store = i % 2 ? b : a;
    for (let round = 0; round < 15; round++) {
      const lock = await store.locks.acquire('counter', 20_000);
      try {
        const n = Number((await store.load('counter'))!.get('n'));
        await store.save('counter', values({ n: String(n + 1) }));
        done++;
      } finally {
        await lock.release();
      }
    }
  });
  await Promise.all(writers);
  t.is(done, 240);
  t.deepEqual(Object.fromEntries((await b.load('counter'))!), { n: '240' });
  t.is(a.locks.lostLeases + b.locks.lostLeases, 0);
});
