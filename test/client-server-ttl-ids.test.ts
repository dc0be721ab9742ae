import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import test from 'ava';
import { FilesystemStore, MemoryStore, SessionServer, type SessionServerConfig, type SessionStore } from '../lib/index.js';
import { startServer, tempDir } from './support/server.js';

// The protocol additions the clients need: `ttl` (per-session lifetime) and `ids` (listing).

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

async function storages(t: Parameters<typeof tempDir>[0]): Promise<Array<[string, SessionServerConfig]>> {
  return [
    ['memory', { storage: 'memory' }],
    ['filesystem', { storage: 'filesystem', savePath: await tempDir(t) }],
  ];
}

test('ttl: a session past its own lifetime cannot be opened or listed, before any sweep', async (t) => {
  for (const [name, config] of await storages(t)) {
    const { connect } = await startServer(t, { ...config, gcInterval: 0, listSessionIds: true });
    const c = await connect();
    const sid = (await c.request('new'))!.slice(3);
    // Two seconds: room for a slow machine between `ttl` and the reads that must still see it.
    t.deepEqual(await c.pipeline(['put user alice', 'ttl 2', 'ttl', 'close']), ['ok', 'ok', 'ok 2', 'ok'], name);
    t.is(await c.request(`open ${sid} r`), 'ok', name);
    t.is(await c.request('get user'), 'ok alice', name);
    t.is(await c.request('close'), 'ok');
    t.is(await c.request('ids'), `ok ${sid}`, name);
    await sleep(2100);
    t.is(await c.request(`open ${sid} r`), 'err Could not open session.', name);
    t.is(await c.request('ids'), 'ok', name);
    // rw on an expired id starts an empty session, as for any unknown id.
    t.deepEqual(await c.pipeline([`open ${sid} rw`, 'keys', 'destroy']), ['ok', 'ok', 'ok'], name);
  }
});

test('ttl overrides the max lifetime both ways; ttl default gives the session back to it', async (t) => {
  for (const [name, config] of await storages(t)) {
    const { connect } = await startServer(t, { ...config, gcInterval: 0 });
    const c = await connect();
    const long = (await c.request('new'))!.slice(3);
    t.deepEqual(await c.pipeline(['ttl 3600', 'ttl', 'close']), ['ok', 'ok 3600', 'ok'], name);
    const plain = (await c.request('new'))!.slice(3);
    t.deepEqual(await c.pipeline(['ttl', 'close']), ['ok 1440', 'ok'], name);
    await sleep(5);
    // gc 0: everything idle is collected, except the session whose own lifetime has not passed.
    t.is(await c.request('gc 0'), 'ok 1', name);
    t.is(await c.request(`open ${plain} r`), 'err Could not open session.', name);
    t.is(await c.request(`open ${long} rw`), 'ok', name);
    t.deepEqual(await c.pipeline(['ttl default', 'ttl', 'close']), ['ok', 'ok 1440', 'ok'], name);
    await sleep(5);
    t.is(await c.request('gc 0'), 'ok 1', name);
    // A short own lifetime is collected by the sweep even though the max lifetime is long.
    const short = (await c.request('new'))!.slice(3);
    t.deepEqual(await c.pipeline(['ttl 2', 'close']), ['ok', 'ok'], name);
    t.is(await c.request('gc'), 'ok 0', name);
    await sleep(2100);
    t.is(await c.request('gc'), 'ok 1', name);
    t.is(await c.request(`open ${short} r`), 'err Could not open session.', name);
  }
});

test('ttl: accesses restart the clock, readers may set it, regenerate_id keeps it, bad arguments are refused', async (t) => {
  const { connect } = await startServer(t, { gcInterval: 0 });
  const c = await connect();
  t.is(await c.request('ttl 5'), 'err No session opened.');
  const sid = (await c.request('new'))!.slice(3);
  t.deepEqual(await c.pipeline(['ttl 0', 'ttl -3', 'ttl soon', 'ttl 1.5']), [
    'err ttl takes a whole number of seconds (at least 1) or default',
    'err ttl takes a whole number of seconds (at least 1) or default',
    'err ttl takes a whole number of seconds (at least 1) or default',
    'err ttl takes a whole number of seconds (at least 1) or default',
  ]);
  t.deepEqual(await c.pipeline(['put a 1', 'close', `open ${sid} r`, 'ttl 3', 'ttl', 'close']), ['ok', 'ok', 'ok', 'ok', 'ok 3', 'ok']);
  // Each open counts as an access, so the session outlives its 3 s by being used (with room
  // for a slow machine between two uses).
  for (let i = 0; i < 3; i++) {
    await sleep(1100);
    t.deepEqual(await c.pipeline([`open ${sid} r`, 'get a', 'close']), ['ok', 'ok 1', 'ok'], `access ${i}`);
  }
  t.is(await c.request(`open ${sid} rw`), 'ok');
  const moved = (await c.request('regenerate_id'))!.slice(3);
  t.deepEqual(await c.pipeline(['ttl', 'close', `open ${sid} r`, `open ${moved} r`, 'get a']), ['ok 3', 'ok', 'err Could not open session.', 'ok', 'ok 1']);
  await sleep(3100);
  t.is(await c.request(`open ${moved} r`), 'err Could not open session.');
});

test('ids is off unless listSessionIds is set, and hello says which of ttl/ids work', async (t) => {
  const off = await startServer(t);
  const a = await off.connect();
  t.is(await a.request('ids'), 'err ids is disabled on this server (enable listSessionIds)');
  const hello = (await a.request('hello'))!;
  t.regex(hello, /capabilities=\S*\bttl\b/);
  t.notRegex(hello, /\bids\b/);

  const on = await startServer(t, { listSessionIds: true });
  const b = await on.connect();
  t.is(await b.request('ids'), 'ok');
  const one = (await b.request('new'))!.slice(3);
  const two = (await b.request('new'))!.slice(3);
  t.is(await b.request('close'), 'ok');
  t.deepEqual((await b.request('ids'))!.slice(3).split('|').sort(), [one, two].sort());
  t.regex((await b.request('hello'))!, /capabilities=\S*\bids\b/);
});

test('a store without the optional methods answers ttl and ids with a clear err', async (t) => {
  const inner = new MemoryStore();
  const bare: SessionStore = {
    name: 'bare',
    open: () => inner.open(),
    load: (id) => inner.load(id),
    save: (id, data) => inner.save(id, data),
    destroy: (id) => inner.destroy(id),
    touch: (id) => inner.touch(id),
    collect: (ms, held) => inner.collect(ms, held),
    count: () => inner.count(),
    close: () => inner.close(),
  };
  const { connect } = await startServer(t, { storage: bare, listSessionIds: true });
  const c = await connect();
  t.regex((await c.request('new'))!, /^ok [0-9a-f]{32}$/);
  const replies = await c.pipeline(['ttl 10', 'ttl', 'ids', 'put x 1', 'regenerate_id', 'get x']);
  t.deepEqual(replies.slice(0, 4), [
    'err ttl is not supported by the bare storage',
    'err ttl is not supported by the bare storage',
    'err ids is not supported by the bare storage',
    'ok',
  ]);
  // regenerate_id works without them.
  t.regex(replies[4]!, /^ok [0-9a-f]{32}$/);
  t.is(replies[5], 'ok 1');
  t.notRegex((await c.request('hello'))!, /\b(ttl|ids)\b/);
});

test('filesystem: version-1 files stay readable, a lifetime makes a version-2 file, and it survives a restart', async (t) => {
  const savePath = await tempDir(t);
  const sid = 'legacy-session_1';
  await writeFile(join(savePath, `sess_${sid}`), JSON.stringify({ v: 1, data: { user: 'bob' } }), { mode: 0o600 });
  const config: SessionServerConfig = { storage: 'filesystem', savePath, gcInterval: 0, maxLifetime: 1 };
  const first = await startServer(t, config);
  const c = await first.connect();
  t.deepEqual(await c.pipeline([`open ${sid} rw`, 'get user', 'ttl 3600', 'put user carol', 'close']), ['ok', 'ok bob', 'ok', 'ok', 'ok']);
  const file = JSON.parse(await readFile(join(savePath, `sess_${sid}`), 'utf8'));
  t.deepEqual(file, { v: 2, data: { user: 'carol' }, lifetime: 3600 });
  const short = (await c.request('new'))!.slice(3);
  t.deepEqual(await c.pipeline(['ttl 1', 'close']), ['ok', 'ok']);
  c.close();
  await first.server.close();

  // A new process knows nothing of those lifetimes until it reads the files.
  const second = await startServer(t, config);
  const d = await second.connect();
  await sleep(1100);
  t.is(await d.request(`open ${short} r`), 'err Could not open session.');
  // Idle past the 1 s max lifetime, but its own lifetime is an hour: the sweep reads it and keeps it.
  t.is(await d.request('gc'), 'ok 1');
  t.deepEqual(await d.pipeline([`open ${sid} rw`, 'get user', 'ttl', 'ttl default', 'close']), ['ok', 'ok carol', 'ok 3600', 'ok', 'ok']);
  t.deepEqual(JSON.parse(await readFile(join(savePath, `sess_${sid}`), 'utf8')), { v: 1, data: { user: 'carol' } });
});

test('stores directly: save keeps the lifetime, destroy drops it, expiry and ids agree', async (t) => {
  const stores: SessionStore[] = [new MemoryStore(), new FilesystemStore({ savePath: await tempDir(t) })];
  for (const store of stores) {
    await store.open();
    t.false(await store.setLifetime!('nobody', 10), store.name);
    await store.save('s1', new Map([['k', 'v']]));
    t.true(await store.setLifetime!('s1', 10), store.name);
    await store.save('s1', new Map([['k', 'w']]));
    t.is((await store.expiry!('s1'))?.lifetime, 10, store.name);
    t.deepEqual([...(await store.load('s1'))!], [['k', 'w']], store.name);
    t.deepEqual(await store.ids!(), ['s1'], store.name);
    t.true(await store.destroy('s1'), store.name);
    await store.save('s1', new Map());
    t.is((await store.expiry!('s1'))?.lifetime, null, store.name);
    await store.close();
  }
});

test('a SessionServer subclass sees listSessionIds from its config', (t) => {
  t.false(new SessionServer({ logLevel: 'silent' }).listSessionIds);
  t.true(new SessionServer({ logLevel: 'silent', listSessionIds: true }).listSessionIds);
});
