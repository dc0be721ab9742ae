import test from 'ava';
import pg from 'pg';
import { ConfigError, PostgresStore } from '../lib/index.js';
import { migrate, PostgresNames, SCHEMA_VERSION } from '../lib/storage/postgres-schema.js';
import { openStore, POSTGRES_URL, postgresAdmin, postgresConfig } from './fixtures/stores.js';
import { startServer } from './support/server.js';

test('the first start creates the tables: sessions with indexes for the sweep, unlogged lock rows', async (t) => {
  const config = await postgresConfig(t);
  const [schema] = config.postgresTable!.split('.');
  const { connect } = await startServer(t, config);
  const c = await connect();
  const sid = (await c.request('new'))!.slice(3);
  t.deepEqual(await c.pipeline(['put user alice', 'put  whole', 'close']), ['ok', 'ok', 'ok']);
  const tables = await postgresAdmin<{ relname: string; relpersistence: string }>(
    `SELECT c.relname, c.relpersistence FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
     WHERE n.nspname = $1 AND c.relkind = 'r' ORDER BY c.relname`,
    [schema],
  );
  t.deepEqual(tables, [
    { relname: 'sessions', relpersistence: 'p' },
    { relname: 'sessions_locks', relpersistence: 'u' },
    { relname: 'sessions_schema', relpersistence: 'p' },
  ]);
  const indexes = await postgresAdmin<{ indexdef: string }>(`SELECT indexdef FROM pg_indexes WHERE schemaname = $1 AND tablename = 'sessions'`, [schema]);
  t.true(indexes.some(({ indexdef }) => /\(access_slot\) WHERE \(lifetime IS NULL\)$/.test(indexdef)), 'an index for the gc sweep');
  t.deepEqual(await postgresAdmin(`SELECT version FROM "${schema}".sessions_schema`), [{ version: SCHEMA_VERSION }]);
  // The values are plain JSON, readable from SQL.
  t.deepEqual(await postgresAdmin(`SELECT data::json->>'user' AS user, data::json->>'' AS empty FROM "${schema}".sessions WHERE id = $1`, [sid]), [
    { user: 'alice', empty: 'whole' },
  ]);
});

test('an older schema is migrated by version, keeping its sessions', async (t) => {
  const config = await postgresConfig(t);
  const names = new PostgresNames(config.postgresTable);
  const pool = new pg.Pool({ connectionString: POSTGRES_URL });
  t.is(await migrate(pool, names, 1), 1);
  await pool.query(`INSERT INTO ${names.sessions} (id, data) VALUES ('old', '{"from":"v1"}')`);
  await pool.end();
  const store = await openStore(t, config);
  t.deepEqual(await postgresAdmin(`SELECT version FROM ${names.version}`), [{ version: SCHEMA_VERSION }]);
  t.deepEqual(Object.fromEntries((await store.load('old'))!), { from: 'v1' });
  t.true(await store.setLifetime!('old', 60), 'the lifetime column of version 2 is there');
});

test('a schema newer than this sessionserver is refused at start', async (t) => {
  const config = await postgresConfig(t);
  await openStore(t, config);
  const names = new PostgresNames(config.postgresTable);
  await postgresAdmin(`UPDATE ${names.version} SET version = 99`);
  const store = new PostgresStore({ url: POSTGRES_URL, table: config.postgresTable });
  await t.throwsAsync(store.open(), { message: /schema version 99; this sessionserver knows only up to/ });
  await store.close();
});

test('instances starting at the same moment create the schema once', async (t) => {
  const config = await postgresConfig(t);
  const stores = Array.from({ length: 4 }, () => new PostgresStore({ url: POSTGRES_URL, table: config.postgresTable }));
  t.teardown(() => Promise.all(stores.map((store) => store.close())));
  await Promise.all(stores.map((store) => store.open()));
  await stores[0]!.save('x', new Map([['a', '1']]));
  t.deepEqual(Object.fromEntries((await stores[3]!.load('x'))!), { a: '1' });
});

test('table names are checked; invalid ids never reach SQL', async (t) => {
  for (const bad of ['Sessions', 'a;drop', 'a.b.c', '"x"', 'x'.repeat(60), '1abc', '']) {
    t.throws(() => new PostgresStore({ table: bad }), { instanceOf: ConfigError }, bad);
  }
  const store = await openStore(t, await postgresConfig(t));
  for (const id of ["x'; DROP TABLE x; --", '../x', '', 'a b']) {
    await t.throwsAsync(store.load(id), { message: /invalid session id/ }, id);
    await t.throwsAsync(store.save(id, new Map()), { message: /invalid session id/ }, id);
  }
});

test('a store that cannot reach PostgreSQL fails to open with one clear error', async (t) => {
  const store = new PostgresStore({ url: 'postgres://postgres@127.0.0.1:1/test' });
  await t.throwsAsync(store.open(), { message: /cannot prepare the PostgreSQL session tables: .*ECONNREFUSED/ });
  await store.close();
});
