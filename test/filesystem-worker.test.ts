import { readdir } from 'node:fs/promises';
import test from 'ava';
import type { FilesystemStore } from '../lib/index.js';
import { FileQueue } from '../lib/storage/file-batch.js';
import type { FileEnvelope } from '../lib/storage/file-requests.js';
import { FileWorkers } from './support/file-workers.js';
import { captureLogger } from './support/log-capture.js';
import type { LineClient } from './support/line-client.js';
import { startServer, tempDir } from './support/server.js';
import { track, until } from './support/wait.js';

// The filesystem store reaches the disk through a worker thread, one message per operation
// (or per batch). What that must not change: acknowledged writes are on disk, big sessions
// round-trip, and a stuck or dead worker costs clients an `err`, never a hang or a crash.
// The worker is frozen and killed through the inspector (support/file-workers.ts); it is the
// process's, so those tests run serially.

const UNAVAILABLE = 'err Storage unavailable';
const STORAGE_TIMEOUT = 1000;
// Far beyond storageTimeout: a reply that never came shows as null, not as a slow test.
const READ_TIMEOUT = 20_000;

async function newSession(c: LineClient, values: Record<string, string>): Promise<string> {
  const sid = (await c.request('new'))!.slice(3);
  for (const [key, value] of Object.entries(values)) await c.request(`put ${key} ${value}`);
  return sid;
}

test.serial('a frozen file worker: err Storage unavailable within storageTimeout, ping goes on; thawed, late writes are dropped and it serves again', async (t) => {
  const log = captureLogger('info');
  const { connect } = await startServer(t, { storage: 'filesystem', savePath: await tempDir(t), storageTimeout: STORAGE_TIMEOUT, gcInterval: 0, logger: log.logger });
  const workers = await FileWorkers.attach(t);
  const writer = await connect();
  const sid = await newSession(writer, { color: 'blue' });
  t.deepEqual(await writer.pipeline(['close', `open ${sid} rw`, 'put color green']), ['ok', 'ok', 'ok']);

  await workers.freeze();
  const closing = track(writer.request('close', READ_TIMEOUT));
  const other = await connect();
  // The event loop is free while the worker is stuck: a session already loaded needs no disk.
  t.is(await other.request('ping'), 'ok pong');
  t.false(closing.settled, 'the close is still waiting for the disk');
  t.is(await closing.promise, UNAVAILABLE);
  // Later operations, queued behind the stuck one, time out the same way.
  t.deepEqual(await other.pipeline([`open ${sid} r`, `open ${sid} rw`, 'ping']), [UNAVAILABLE, UNAVAILABLE, 'ok pong']);

  await workers.thaw();
  await until(async () => (await other.request(`open ${sid} r`, READ_TIMEOUT)) === 'ok', 'the store reads again');
  // The write answered err reached the worker after its deadline: skipped, not written late.
  t.is(await other.request('get color'), 'ok blue');
  t.deepEqual(await other.pipeline([`open ${sid} rw`, 'put color red', 'close', `open ${sid} r`, 'get color']), ['ok', 'ok', 'ok', 'ok', 'ok red']);

  const lines = log.lines();
  t.is(lines.filter((line) => line.msg === 'storage unavailable').length, 1, 'one warning for the outage');
  t.is(lines.filter((line) => line.msg === 'storage available again').length, 1);
  t.deepEqual(lines.filter((line) => line.level >= 50), [], 'nothing logged as an error');
});

test.serial('a file worker that dies holding requests: they get err Storage unavailable, the next ones start a new worker', async (t) => {
  const log = captureLogger('info');
  const { connect, server } = await startServer(t, { storage: 'filesystem', savePath: await tempDir(t), storageTimeout: 30_000, gcInterval: 0, logger: log.logger });
  const store = server.store as FilesystemStore;
  const workers = await FileWorkers.attach(t);
  const clients = await Promise.all(Array.from({ length: 8 }, () => connect()));
  const sids = await Promise.all(clients.map((c, i) => newSession(c, { n: String(i) })));
  t.deepEqual(await Promise.all(clients.map((c) => c.request('close'))), clients.map(() => 'ok'));
  t.is(workers.count, 1, 'the file worker runs');

  await workers.freeze();
  // Requests the worker will never answer: it dies holding them (storageTimeout is far off).
  const opened = store.filesOpened;
  const held = clients.map((c, i) => c.pipeline([`open ${sids[i]} rw`, 'put n changed', 'close']));
  await until(() => store.filesOpened === opened + clients.length, 'every open has gone to the file worker');
  const pinger = await connect();
  t.is(await pinger.request('ping'), 'ok pong');
  await workers.crash();
  for (const replies of await Promise.all(held)) t.is(replies[0], UNAVAILABLE, 'each open the dead worker held');

  // A new worker serves the next requests, and the data acknowledged before is all there.
  const reader = await connect();
  for (const [i, sid] of sids.entries()) t.deepEqual(await reader.pipeline([`open ${sid} rw`, 'get n', 'put n again', 'close']), ['ok', `ok ${i}`, 'ok', 'ok']);
  await until(() => workers.count === 1, 'a new file worker is attached in place of the dead one');
  t.deepEqual(await reader.pipeline([`open ${sids[0]} r`, 'get n']), ['ok', 'ok again']);
  t.deepEqual(
    log.lines().filter((line) => line.level >= 50),
    [],
    'nothing logged as an error',
  );
});

test('many clients closing at once, with fsync: every close is ok, and every session is there after a restart on the same folder', async (t) => {
  const savePath = await tempDir(t);
  const config = { storage: 'filesystem' as const, savePath, fsync: true, storageTimeout: 60_000, gcInterval: 0 };
  const first = await startServer(t, config);
  const clients = await Promise.all(Array.from({ length: 40 }, () => first.connect()));
  // Two rounds: each close in flight at the same moment as 39 others, so writes share batches.
  const written = new Map<string, string>();
  for (let round = 0; round < 2; round++) {
    const replies = await Promise.all(
      clients.map(async (c, i) => {
        const value = `client-${i}-round-${round}`;
        const sid = (await c.request('new'))!.slice(3);
        written.set(sid, value);
        return c.pipeline([`put v ${value}`, 'close']);
      }),
    );
    t.deepEqual(replies, clients.map(() => ['ok', 'ok']));
  }
  await first.server.close();
  t.deepEqual((await readdir(savePath)).filter((name) => name.endsWith('.tmp')), [], 'no temp file left');

  const second = await startServer(t, config);
  const reader = await second.connect();
  for (const [sid, value] of written) t.deepEqual(await reader.pipeline([`open ${sid} r`, 'get v']), ['ok', `ok ${value}`], sid);
  t.regex((await reader.request('stats'))!, /\bsessions=80\b/);
});

test('a session of several MiB whose file is several times larger (escaping) round-trips through a restart', async (t) => {
  const savePath = await tempDir(t);
  const config = { storage: 'filesystem' as const, savePath, storageTimeout: 60_000, gcInterval: 0 };
  const first = await startServer(t, config);
  const c = await first.connect();
  // Each character escapes to 2 (`"`, `\`) or 6 (`\u0001`) bytes in the JSON file.
  const values = Array.from({ length: 6 }, (_, i) => `${i}"\\\u0001é`.repeat(150_000));
  t.is(await c.request('open big rw'), 'ok');
  for (const [i, value] of values.entries()) t.is(await c.request(`put k${i} ${value}`), 'ok');
  t.is(await c.request('close'), 'ok');
  await first.server.close();

  const second = await startServer(t, config);
  const reader = await second.connect();
  t.is(await reader.request('open big r'), 'ok');
  for (const [i, value] of values.entries()) t.true((await reader.request(`get k${i}`, READ_TIMEOUT)) === `ok ${value}`, `k${i} is whole`);
});

test('the file worker takes stores in turns: a burst of one waits behind a store that arrived during its batch', (t) => {
  const queue = new FileQueue();
  const requests = (folder: string, count: number): FileEnvelope[] =>
    Array.from({ length: count }, (_, n) => ({ id: n, deadline: Infinity, folder, request: { op: 'read', sid: `${folder}${n}`, mark: false, wantData: false, lastAccess: 0 } }));
  const next = () => queue.next(2).map((envelope) => `${envelope.folder}${envelope.id}`);
  queue.add(requests('a', 5));
  t.deepEqual(next(), ['a0', 'a1']);
  queue.add(requests('b', 3));
  t.deepEqual(next(), ['b0', 'b1'], 'b came during a batch of a: its turn is next');
  t.deepEqual(next(), ['a2', 'a3']);
  queue.add(requests('c', 1));
  t.deepEqual(next(), ['b2']);
  t.deepEqual(next(), ['c0']);
  t.deepEqual(next(), ['a4'], 'within a store, in the order sent');
  t.deepEqual(next(), []);
});
