import test from 'ava';
import { fencedSaveScenario } from './fixtures/fenced-save.js';
import pg from 'pg';
import { PostgresStore } from '../lib/index.js';
import { releaseTag } from '../lib/storage/postgres-locks.js';
import { openStore, POSTGRES_URL, postgresAdmin, postgresConfig } from './fixtures/stores.js';
import { track, until, writersQueued } from './support/wait.js';

// Lock hand-off latency between instances is measured by `npm run bench` (bench/latency.ts), not asserted here.

const postgresStores = async (t: Parameters<typeof postgresConfig>[0], lockLease?: number) => {
  const config = { ...(await postgresConfig(t)), lockLease };
  return [(await openStore(t, config)) as PostgresStore, (await openStore(t, config)) as PostgresStore] as const;
};

/** The lock row of a session: its owner, lease left (ms) and whether a waiter marked it. */
async function lockRow(store: PostgresStore, id: string): Promise<{ owner: string; left: number; contended: boolean } | undefined> {
  const { rows } = await store.pool.query<{ owner: string; left: number; contended: boolean }>(
    `SELECT owner, extract(epoch FROM expires_at - clock_timestamp()) * 1000 AS left, contended FROM ${store.names.locks} WHERE id = $1`,
    [id],
  );
  return rows[0];
}

/** How many connections LISTEN for lock releases on the store's channel. */
async function listeners(store: PostgresStore): Promise<number> {
  const [{ count }] = await postgresAdmin<{ count: number }>(`SELECT count(*)::integer AS count FROM pg_stat_activity WHERE query = $1`, [
    `LISTEN "${store.names.releaseChannel}"`,
  ]);
  return count;
}

test('a lock is a lease row with the owner token; the holder renews it; release deletes it', async (t) => {
  const [a] = await postgresStores(t, 1500);
  const lock = await a.locks.acquire('s', 1000);
  const first = (await lockRow(a, 's'))!;
  t.is(first.owner, a.locks.tokenOf('s') ?? 'no token');
  t.true(first.left <= 1500);
  // Left alone, the lease only shrinks until it has run out; a renewal sets it back up.
  let last = first.left;
  await until(async () => {
    const row = await lockRow(a, 's');
    if (!row || row.left <= 0) throw new Error('the lease ran out: never renewed');
    const renewed = row.left > last;
    last = row.left;
    return renewed;
  }, 'a renewal of the lease');
  t.is((await lockRow(a, 's'))?.owner, a.locks.tokenOf('s') ?? 'no token', 'still ours');
  await lock.release();
  // The release answers at once; its DELETE is on its way (PostgresLocks.unlock).
  await a.locks.settled();
  t.is(await lockRow(a, 's'), undefined, 'the row is gone');
});

test('a release notifies only when someone waits, naming a hash of the session, never its id', async (t) => {
  const [a, b] = await postgresStores(t);
  const listener = new pg.Client({ connectionString: POSTGRES_URL });
  await listener.connect();
  t.teardown(() => listener.end());
  const heard: string[] = [];
  listener.on('notification', (message) => heard.push(message.payload ?? ''));
  await listener.query(`LISTEN "${a.names.releaseChannel}"`);
  for (let i = 0; i < 5; i++) await (await a.locks.acquire('quiet', 1000)).release();
  // Two contended releases: `busy`, then `marker`. Notifications arrive in commit order, so
  // once the marker's is heard, any notification of the quiet releases would have been too.
  for (const id of ['busy', 'marker']) {
    const held = await a.locks.acquire(id, 1000);
    const waiting = b.locks.acquire(id, 30_000);
    await until(async () => (await lockRow(a, id))?.contended === true, `the waiter marked ${id} contended`);
    await held.release();
    await (await waiting).release();
  }
  await until(() => heard.includes(releaseTag('marker')), 'the marker release notification');
  t.deepEqual(heard, [releaseTag('busy'), releaseTag('marker')]);
  t.false(heard[0]!.includes('busy'));
});

test('a holder whose lease ran out cannot write over the new holder (fenced save), nor release its lock', async (t) => {
  const [a, b] = await postgresStores(t, 1500);
  await fencedSaveScenario(t, a, b, (id) => a.pool.query(`DELETE FROM ${a.names.locks} WHERE id = $1`, [id]));
});

test('the LISTEN connection breaks: waiters still get locks, and are woken by releases again once it is back', async (t) => {
  const config = await postgresConfig(t);
  // A short-lease holder for the outage, a long-lease one for after it; B waits with a lease
  // of a minute, so its own re-check never comes before a release that wakes it.
  const shortA = (await openStore(t, { ...config, lockLease: 1000 })) as PostgresStore;
  const b = (await openStore(t, { ...config, lockLease: 60_000 })) as PostgresStore;
  const [{ count }] = await postgresAdmin<{ count: number }>(
    `SELECT count(pg_terminate_backend(pid))::integer AS count FROM pg_stat_activity WHERE query = $1 AND pid <> pg_backend_pid()`,
    [`LISTEN "${b.names.releaseChannel}"`],
  );
  t.is(count, 2, "both instances' listeners were cut");

  // While B cannot hear, it re-checks when A's lease would end (at most a second here).
  const held = await shortA.locks.acquire('l', 1000);
  const waiting = track(b.locks.acquire('l', 30_000));
  await writersQueued(b.locks, 1);
  await until(async () => (await lockRow(b, 'l'))?.contended === true, 'B asked and found it taken');
  await held.release();
  await (await waiting.promise).release();

  // Both reconnect (after about a second) and LISTEN again.
  const longA = (await openStore(t, { ...config, lockLease: 60_000 })) as PostgresStore;
  await until(async () => (await listeners(b)) === 3, 'the listeners of both instances are back, and the new one');
  const again = await longA.locks.acquire('l', 1000);
  const next = track(b.locks.acquire('l', 30_000));
  await until(async () => (await lockRow(b, 'l'))?.contended === true, 'B asked and found it taken');
  t.false(next.settled);
  await again.release();
  // A's lease and B's are a minute: only the release's notification can wake B within its 30 s.
  await (await next.promise).release();
  t.is(b.locks.timeouts, 0);
});
