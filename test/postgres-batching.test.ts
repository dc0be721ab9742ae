import test, { type ExecutionContext } from 'ava';
import pg from 'pg';
import type { PostgresStore, SessionServerConfig } from '../lib/index.js';
import { POSTGRES_URL, postgresAdmin, postgresConfig } from './fixtures/stores.js';
import type { LineClient } from './support/line-client.js';
import { startServer, type Running } from './support/server.js';
import { track, until } from './support/wait.js';

// Opens and closes that queue up behind statements in flight go to PostgreSQL together, one
// statement (and one commit) per batch; each still gets its own answer. Batching is forced, not
// hoped for: the statements in flight are held up by row locks of an admin transaction, the
// others are seen waiting in the store's queue, then everything is let go. Which statements
// went is counted by the store (statements sent, items they carried). How fast: `npm run bench`.

const UNAVAILABLE = 'err Storage unavailable';
const CLOSE_REFUSED = 'err Could not close session';

/** Two servers on one PostgreSQL store; long timeouts, so held-up statements do not time out. */
async function twoInstances(t: ExecutionContext, extra: SessionServerConfig = {}) {
  const config: SessionServerConfig = { ...(await postgresConfig(t)), gcInterval: 0, storageTimeout: 30_000, lockTimeout: 30_000, lockLease: 60_000, ...extra };
  const a = await startServer(t, config);
  const b = await startServer(t, config);
  return { a, b, store: a.server.store as PostgresStore, table: config.postgresTable! };
}

/** Connections to `server`, one per id, each holding its session open for writing with `v` pending. */
async function writers(server: Running, ids: string[], value: (id: string) => string): Promise<LineClient[]> {
  return Promise.all(
    ids.map(async (id) => {
      const client = await server.connect();
      const replies = await client.pipeline([`open ${id} rw`, `put v ${value(id)}`]);
      if (replies.join() !== 'ok,ok') throw new Error(`opening ${id}: ${replies.join()}`);
      return client;
    }),
  );
}

/** Writes `v` of each session through `server` (and releases it). */
async function seed(server: Running, ids: string[], value: (id: string) => string): Promise<void> {
  const clients = await writers(server, ids, value);
  const replies = await Promise.all(clients.map((client) => client.request('close')));
  if (replies.some((reply) => reply !== 'ok')) throw new Error(`seeding: ${replies.join()}`);
}

/** What `key` of each session reads through `server` (a reader: takes no lock). */
async function valuesOf(server: Running, ids: string[], key = 'v'): Promise<string[]> {
  const reader = await server.connect();
  const values: string[] = [];
  for (const id of ids) {
    const [opened, value] = await reader.pipeline([`open ${id} r`, `get ${key}`]);
    values.push(opened === 'ok' ? value!.replace(/^ok /, '') : opened!);
  }
  return values;
}

/**
 * An admin transaction of its own, holding rows locked (FOR UPDATE) until it ends: a statement
 * that must write one of them waits in flight meanwhile.
 */
async function holdRows(t: ExecutionContext, sql: string, values: unknown[]): Promise<{ end(how: 'COMMIT' | 'ROLLBACK'): Promise<void> }> {
  const client = new pg.Client({ connectionString: POSTGRES_URL });
  await client.connect();
  let ended = false;
  const end = async (how: 'COMMIT' | 'ROLLBACK') => {
    if (ended) return;
    ended = true;
    await client.query(how).catch(() => {});
    await client.end();
  };
  t.teardown(() => end('ROLLBACK'));
  await client.query('BEGIN');
  await client.query(sql, values);
  return { end };
}

/** The ids of the sessions whose rows `holdRows` locks, as `close`s of them wait for it. */
const lockSessions = (table: string, ids: string[]): [string, unknown[]] => [`SELECT 1 FROM ${table} WHERE id = ANY($1) FOR UPDATE`, [ids]];

const ids = (prefix: string, count: number) => Array.from({ length: count }, (_, i) => `${prefix}${i}`);

test('closes that queue up go in one statement: all ok, all written, every lock released', async (t) => {
  const { a, b, store, table } = await twoInstances(t);
  const { batches } = store.closes;
  const inFlight = batches.maxInFlight;
  const blockers = ids('blocker', inFlight);
  const sessions = ids('s', 20);
  await seed(a, [...blockers, ...sessions], () => 'old');

  const blocking = await writers(a, blockers, () => 'blocker');
  const closing = await writers(a, sessions, (id) => `new-${id}`);
  const held = await holdRows(t, ...lockSessions(table, blockers));
  const before = { statements: batches.statements, items: batches.items };
  // The blockers' closes go at once, alone, and wait in flight for the held rows.
  const blocked = blocking.map((client) => track(client.request('close')));
  await until(() => batches.statements === before.statements + inFlight, 'the blockers’ closes are in flight');
  // Twenty closes from twenty connections: with every statement slot taken, they wait here.
  const answers = closing.map((client) => track(client.request('close')));
  await until(() => batches.queued === sessions.length, 'all twenty closes wait for a statement');
  t.false(answers.some((answer) => answer.settled), 'nobody is answered before the commit');

  await held.end('COMMIT');
  t.deepEqual(await Promise.all(blocked.map((answer) => answer.promise)), blockers.map(() => 'ok'));
  t.deepEqual(await Promise.all(answers.map((answer) => answer.promise)), sessions.map(() => 'ok'));
  t.is(batches.statements, before.statements + inFlight + 1, 'the twenty went in one statement');
  t.is(batches.items, before.items + inFlight + sessions.length);

  // Written (read through the other instance) and released: no lock row left, B writes at once.
  t.deepEqual(await valuesOf(b, sessions), sessions.map((id) => `new-${id}`));
  t.deepEqual(await postgresAdmin(`SELECT id FROM ${table}_locks`), []);
  const onB = await b.connect();
  for (const id of sessions) t.deepEqual(await onB.pipeline([`open ${id} rw`, 'get v', 'close']), ['ok', `ok new-${id}`, 'ok']);
});

test('a batch with sessions whose leases ran out and were taken over by another instance: err for those, ok for the rest, the takers’ data kept', async (t) => {
  const { a, b, store, table } = await twoInstances(t, { lockTimeout: 1000 });
  const { batches } = store.closes;
  const inFlight = batches.maxInFlight;
  const blockers = ids('blocker', inFlight);
  const kept = ids('kept', 6);
  // `gone` is taken over and written by B before A's batch; `taken` is held by B through it.
  const lost = ['gone', 'taken'];
  await seed(a, [...blockers, ...kept, ...lost], () => 'old');
  const blocking = await writers(a, blockers, () => 'blocker');
  const closing = await writers(a, [...kept, ...lost], () => 'from-a');

  // A's leases on the lost sessions end behind its back (as when A stalls past them); B takes
  // them over. (Should A's renewal come first, B's open times out and the lease is ended again.)
  const takers = await Promise.all(lost.map(() => b.connect()));
  for (const [i, id] of lost.entries()) {
    await until(async () => {
      await postgresAdmin(`UPDATE ${table}_locks SET expires_at = clock_timestamp() - interval '1 second' WHERE id = $1`, [id]);
      return (await takers[i]!.request(`open ${id} rw`)) === 'ok';
    }, `B takes ${id} over`);
  }
  t.deepEqual(await takers[0]!.pipeline(['put v from-b', 'commit']), ['ok', 'ok']);
  t.is(await takers[1]!.request('put v from-b-held'), 'ok');

  const held = await holdRows(t, ...lockSessions(table, blockers));
  const before = batches.statements;
  const blocked = blocking.map((client) => track(client.request('close')));
  await until(() => batches.statements === before + inFlight, 'the blockers’ closes are in flight');
  const answers = closing.map((client) => track(client.request('close')));
  await until(() => batches.queued === closing.length, 'the closes wait for a statement together');
  await held.end('COMMIT');
  t.deepEqual(await Promise.all(blocked.map((answer) => answer.promise)), blockers.map(() => 'ok'));
  t.deepEqual(await Promise.all(answers.map((answer) => answer.promise)), [...kept.map(() => 'ok'), CLOSE_REFUSED, CLOSE_REFUSED]);
  t.is(batches.statements, before + inFlight + 1, 'the refused and the written went in one statement');

  t.deepEqual(await valuesOf(b, [...kept, 'gone']), [...kept.map(() => 'from-a'), 'from-b']);
  // B still holds `taken`: A's batch left its lock alone, and B's close writes.
  t.is(await takers[1]!.request('close'), 'ok');
  t.deepEqual(await valuesOf(a, ['taken']), ['from-b-held']);
});

test('a batch whose statement fails fails each of its closes with err Storage unavailable, and writes none', async (t) => {
  const { a, b, store, table } = await twoInstances(t);
  const { batches } = store.closes;
  const inFlight = batches.maxInFlight;
  const blockers = ids('blocker', inFlight);
  const sessions = ids('s', 5);
  await seed(a, [...blockers, ...sessions], () => 'old');
  const blocking = await writers(a, blockers, () => 'blocker');
  const closing = await writers(a, sessions, () => 'new');

  // The blockers hold up the statement slots; the batch that follows is held up by s0's row.
  const heldBlockers = await holdRows(t, ...lockSessions(table, blockers));
  const heldFirst = await holdRows(t, ...lockSessions(table, [sessions[0]!]));
  const before = batches.statements;
  const blocked = blocking.map((client) => track(client.request('close')));
  await until(() => batches.statements === before + inFlight, 'the blockers’ closes are in flight');
  const answers = closing.map((client) => track(client.request('close')));
  await until(() => batches.queued === sessions.length, 'the closes wait for a statement together');
  await heldBlockers.end('COMMIT');
  t.deepEqual(await Promise.all(blocked.map((answer) => answer.promise)), blockers.map(() => 'ok'));

  // The batch waits for s0's row; its connection is cut (as by a PostgreSQL restart).
  let batchBackend: number | undefined;
  await until(async () => {
    const rows = await postgresAdmin<{ pid: number }>(
      `SELECT pid FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND query LIKE '%unnest($1::text[], $2::text[], $3::text[], $4::text[])%' AND query LIKE $1`,
      [`%${store.names.locks}%`],
    );
    batchBackend = rows[0]?.pid;
    return batchBackend !== undefined;
  }, 'the batch is waiting for the held row');
  t.is(batches.statements, before + inFlight + 1);
  await postgresAdmin('SELECT pg_terminate_backend($1)', [batchBackend]);
  t.deepEqual(await Promise.all(answers.map((answer) => answer.promise)), sessions.map(() => UNAVAILABLE));
  await heldFirst.end('ROLLBACK');

  t.deepEqual(await valuesOf(b, sessions), sessions.map(() => 'old'), 'none of them was written');
  // Their locks were not released either (the transaction rolled back): A's next writer clears
  // what its instance left behind, and gets the session.
  const next = await a.connect();
  for (const id of sessions) t.deepEqual(await next.pipeline([`open ${id} rw`, 'get v', 'close']), ['ok', 'ok old', 'ok']);
});

test('opens that queue up take their locks in one statement; each gets its own session, and a held one waits', async (t) => {
  const { a, b, store, table } = await twoInstances(t);
  const { opens } = store.locks;
  const inFlight = opens.maxInFlight;
  const blockers = ids('blocker', inFlight);
  const sessions = ids('s', 12);
  await seed(a, sessions, (id) => `value-${id}`);
  // B holds `busy`: A's open of it is in the batch, is refused the lock and waits.
  const holder = await b.connect();
  t.deepEqual(await holder.pipeline(['open busy rw', 'put v from-b']), ['ok', 'ok']);

  // Lock rows of the blockers inserted by a transaction that has not ended: A's opens of them wait in flight.
  const held = await holdRows(t, `INSERT INTO ${table}_locks (id, owner, expires_at) SELECT unnest($1::text[]), 'admin', now()`, [blockers]);
  const before = { statements: opens.statements, items: opens.items };
  const blocking = await Promise.all(blockers.map(() => a.connect()));
  const blocked = blocking.map((client, i) => track(client.request(`open ${blockers[i]} rw`)));
  await until(() => opens.statements === before.statements + inFlight, 'the blockers’ opens are in flight');
  const openers = await Promise.all([...sessions, 'busy'].map(() => a.connect()));
  const answers = [...sessions, 'busy'].map((id, i) => track(openers[i]!.request(`open ${id} rw`)));
  await until(() => opens.queued === sessions.length + 1, 'the opens wait for a statement together');

  await held.end('ROLLBACK');
  t.deepEqual(await Promise.all(blocked.map((answer) => answer.promise)), blockers.map(() => 'ok'));
  t.deepEqual(await Promise.all(answers.slice(0, -1).map((answer) => answer.promise)), sessions.map(() => 'ok'));
  // Every statement but one carried one open; that one carried the thirteen.
  t.is(opens.items - opens.statements - (before.items - before.statements), sessions.length);
  for (const [i, id] of sessions.entries()) t.is(await openers[i]!.request('get v'), `ok value-${id}`, `${id} got its own session`);
  const busy = answers.at(-1)!;
  t.false(busy.settled, 'the open of the held session waits');
  t.is(await holder.request('close'), 'ok');
  t.is(await busy.promise, 'ok');
  t.is(await openers.at(-1)!.request('get v'), 'ok from-b');
  await Promise.all(openers.map((client) => client.request('close')));
});

test('two instances, short leases (renewals all the time), many writers on a few sessions: every cycle ok, no update lost', async (t) => {
  // Batches of opens and closes, lease renewals and releases that notify, all at once on both
  // instances: a deadlock or a lost update shows as an err reply or a wrong count.
  const { a, b } = await twoInstances(t, { lockLease: 500 });
  const sessions = ids('counter', 6);
  const rounds = 8;
  const clients = await Promise.all(Array.from({ length: 36 }, (_, i) => (i % 2 ? b : a).connect()));
  const replies: string[] = [];
  await Promise.all(
    clients.map(async (client, i) => {
      const id = sessions[i % sessions.length]!;
      for (let round = 0; round < rounds; round++) {
        const opened = await client.request(`open ${id} rw`);
        const got = await client.request('get n');
        const n = got === 'err Key does not exist' ? 0 : Number(got!.slice(3));
        const put = await client.request(`put n ${n + 1}`);
        replies.push(opened!, put!, (await client.request('close'))!);
      }
    }),
  );
  t.deepEqual([...new Set(replies)], ['ok']);
  const perSession = (clients.length / sessions.length) * rounds;
  t.deepEqual(await valuesOf(a, sessions, 'n'), sessions.map(() => String(perSession)));
});
