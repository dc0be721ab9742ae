import { utimes, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import test, { type ExecutionContext } from 'ava';
import { FilesystemStore } from '../lib/index.js';
import { startServer, tempDir } from './support/server.js';

// The filesystem store's gc sweep costs the sessions it deletes, not the sessions stored:
// proven by the files it opens and stats (the store counts them), never by how long it takes.
// Cycles per second and sweep time at 100,000 sessions: `npm run bench` (bench/filesystem-sweep.ts).

const HOUR_MS = 60 * 60 * 1000;
const values = (entries: Record<string, string>) => new Map(Object.entries(entries));
const sid = (n: number) => n.toString(16).padStart(32, '0');

/** Session files written directly (as a previous run left them), last accessed `ageMs` ago. */
async function plantSessions(folder: string, ids: string[], ageMs: number, file: object = { v: 1, data: { k: 'v' } }): Promise<void> {
  const at = new Date(Date.now() - ageMs);
  await Promise.all(
    ids.map(async (id) => {
      const path = join(folder, `sess_${id}`);
      await writeFile(path, JSON.stringify(file), { mode: 0o600 });
      await utimes(path, at, at);
    }),
  );
}

async function openedStore(t: ExecutionContext, savePath: string): Promise<FilesystemStore> {
  const store = new FilesystemStore({ savePath, timeout: 30_000 });
  await store.open();
  t.teardown(() => store.close());
  return store;
}

test('a sweep where nothing has expired opens and stats no file, however many are stored', async (t) => {
  const savePath = await tempDir(t);
  const store = await openedStore(t, savePath);
  await Promise.all(Array.from({ length: 2000 }, (_, i) => store.save(sid(i), values({ i: String(i) }))));
  const opened = store.filesOpened;
  for (let sweep = 0; sweep < 3; sweep++) t.is(await store.collect(HOUR_MS, () => false), 0);
  t.is(store.filesExamined, 0, 'no file stat-ed');
  t.is(store.filesOpened, opened, 'no file opened');
  t.is(await store.count(), 2000);
});

test('at start the folder is learnt from names and mtimes: no session file is opened; the idle ones are swept, only they are looked at', async (t) => {
  const savePath = await tempDir(t);
  const fresh = Array.from({ length: 1000 }, (_, i) => sid(i));
  const idle = Array.from({ length: 10 }, (_, i) => sid(5000 + i));
  await plantSessions(savePath, fresh, 60_000);
  await plantSessions(savePath, idle, 2 * HOUR_MS);
  const store = await openedStore(t, savePath);
  t.is(store.filesOpened, 0, 'open() read no session');
  t.is(await store.collect(HOUR_MS, () => false), 10);
  // Each idle one: its mtime checked, and its file read once (its own lifetime was not known yet).
  t.is(store.filesExamined, 10);
  t.is(store.filesOpened, 10);
  t.is(await store.count(), 1000);
  t.is(await store.load(idle[0]!), undefined);
  t.deepEqual(Object.fromEntries((await store.load(fresh[0]!))!), { k: 'v' });
});

test('a session found idle at start but used since by another process on the folder is not deleted', async (t) => {
  const savePath = await tempDir(t);
  const id = sid(1);
  await plantSessions(savePath, [id], 2 * HOUR_MS);
  const store = await openedStore(t, savePath);
  // Another process (or a second store on the folder) reads it: its mtime moves.
  const other = await openedStore(t, savePath);
  t.truthy(await other.load(id));
  t.is(await store.collect(HOUR_MS, () => false), 0);
  t.is(store.filesExamined, 1, 'the one the index thought idle was checked');
  // Now known to be fresh: the next sweep does not look at it again.
  t.is(await store.collect(HOUR_MS, () => false), 0);
  t.is(store.filesExamined, 1);
  t.deepEqual(Object.fromEntries((await store.load(id))!), { k: 'v' });
});

test('an own lifetime longer than the max lifetime, found in a file at start, keeps the session', async (t) => {
  const savePath = await tempDir(t);
  await plantSessions(savePath, [sid(1)], 2 * HOUR_MS, { v: 2, data: { k: 'long' }, lifetime: 24 * 3600 });
  await plantSessions(savePath, [sid(2)], 2 * HOUR_MS, { v: 1, data: { k: 'plain' } });
  const store = await openedStore(t, savePath);
  t.is(await store.collect(HOUR_MS, () => false), 1, 'only the one without an own lifetime');
  t.deepEqual(Object.fromEntries((await store.load(sid(1)))!), { k: 'long' });
  t.is(await store.load(sid(2)), undefined);
  // Its lifetime is known now: later sweeps leave it alone without reading it.
  const examined = store.filesExamined;
  t.is(await store.collect(HOUR_MS, () => false), 0);
  t.is(store.filesExamined, examined);
});

test('held sessions are spared and looked at again by the next sweep, not forgotten', async (t) => {
  const savePath = await tempDir(t);
  await plantSessions(savePath, [sid(1), sid(2)], 2 * HOUR_MS);
  const store = await openedStore(t, savePath);
  t.is(await store.collect(HOUR_MS, (id) => id === sid(1)), 1);
  t.is(await store.collect(HOUR_MS, () => false), 1, 'released, it goes');
  t.is(await store.count(), 0);
});

test('server: gc over the socket sweeps only what expired; sessions written by the server are in its index', async (t) => {
  const savePath = await tempDir(t);
  await plantSessions(savePath, [sid(7)], 2 * HOUR_MS);
  const { server, connect } = await startServer(t, { storage: 'filesystem', savePath, gcInterval: 0 });
  const store = server.store as FilesystemStore;
  const c = await connect();
  for (let i = 0; i < 50; i++) t.deepEqual(await c.pipeline(['new', 'put k v', 'close']).then((r) => r.slice(1)), ['ok', 'ok']);
  t.is(await c.request('gc 3600'), 'ok 1');
  t.is(store.filesExamined, 1, 'only the hour-idle session was looked at');
  t.is(await c.request('gc 3600'), 'ok 0');
  t.is(store.filesExamined, 1);
  t.regex((await c.request('stats'))!, /\bsessions=50\b/);
});
