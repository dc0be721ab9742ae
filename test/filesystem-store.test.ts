import { readdir, readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import test from 'ava';
import { FilesystemStore } from '../lib/index.js';
import { startCli } from './support/cli-process.js';
import { LineClient } from './support/line-client.js';
import { startServer, tempDir } from './support/server.js';

test('sessions survive a restart of the server', async (t) => {
  const savePath = await tempDir(t);
  const first = await startServer(t, { storage: 'filesystem', savePath });
  const c = await first.connect();
  const sid = (await c.request('new'))!.slice(3);
  await c.request('put user alice');
  await c.request('close');
  await first.server.close();

  const second = await startServer(t, { storage: 'filesystem', savePath });
  const d = await second.connect();
  t.is(await d.request(`open ${sid} r`), 'ok');
  t.is(await d.request('get user'), 'ok alice');
});

test('files are private, one per session, with no temp files left behind', async (t) => {
  const savePath = await tempDir(t);
  const { connect } = await startServer(t, { storage: 'filesystem', savePath, fsync: true });
  const c = await connect();
  for (let i = 0; i < 5; i++) {
    await c.request(`open s${i} rw`);
    await c.request(`put i ${i}`);
  }
  await c.request('close');
  const names = (await readdir(savePath)).sort();
  t.deepEqual(names, ['sess_s0', 'sess_s1', 'sess_s2', 'sess_s3', 'sess_s4']);
  t.is((await stat(join(savePath, 'sess_s0'))).mode & 0o777, 0o600);
  t.is((await stat(savePath)).mode & 0o777, 0o700);
});

test('hostile session ids are refused and never touch a path outside the store', async (t) => {
  const savePath = await tempDir(t);
  const { connect } = await startServer(t, { storage: 'filesystem', savePath });
  const c = await connect();
  const hostile = ['../../etc/passwd', '..', '.', '/etc/passwd', 'a/b', 'a\\b', 'x*', 'x?', 'x{tag}', 'a%2f..', 'x'.repeat(129), 'café', 'a\u0000b', 'a b'];
  for (const id of hostile) {
    t.is(await c.request(`open ${id} rw`), 'err Could not open session.', JSON.stringify(id));
  }
  t.deepEqual(await readdir(savePath), []);
  // Ids as express-session (base64url) and PHP make them pass.
  t.is(await c.request('open Xk3_-9aZbQ2cR7uVwY0pLmN4oT6sE8dF rw'), 'ok');
  t.is(await c.request('open 5a1b,c-d9 rw'), 'ok');
});

test('the store itself refuses an invalid id even if one got past the server', async (t) => {
  const store = new FilesystemStore({ savePath: await tempDir(t) });
  await store.open();
  await t.throwsAsync(store.load('../escape'), { message: /invalid session id/ });
  await t.throwsAsync(store.save('../escape', new Map()), { message: /invalid session id/ });
});

test('kill -9: every acknowledged close and commit is intact after a restart', async (t) => {
  const savePath = await tempDir(t);
  const args = ['--storage', 'filesystem', '--save-path', savePath, '--log-level', 'warn'];
  const first = await startCli(t, args);
  const clients = await Promise.all(Array.from({ length: 8 }, () => LineClient.connect(first.port)));
  const acknowledged = new Map<string, number>();
  let stop = false;
  // The kill lands once every writer has had a few writes acknowledged, whatever that takes.
  let allBusy: () => void;
  const everyWriterAcknowledged = new Promise<void>((resolve) => (allBusy = resolve));
  const writers = clients.map(async (c, i) => {
    for (let n = 0; !stop; n++) {
      // After the kill every read ends at once: the connection is closed (null).
      if ((await c.request(`open k${i} rw`)) !== 'ok') return;
      if ((await c.request(`put n ${n}`)) !== 'ok') return;
      // Values of every size: a torn write would show as a corrupt file.
      if ((await c.request(`put blob ${'x'.repeat(n % 7 === 0 ? 200_000 : 10)}`)) !== 'ok') return;
      const reply = await c.request(n % 2 ? 'close' : 'commit').catch(() => null);
      if (reply !== 'ok') return;
      acknowledged.set(`k${i}`, n);
      if (n >= 3 && acknowledged.size === clients.length && [...acknowledged.values()].every((m) => m >= 3)) allBusy();
      if (n % 2 === 0 && (await c.request('close').catch(() => null)) !== 'ok') return;
    }
  });
  // (A writer that stopped early ends the wait too; the assertions below then say so.)
  await Promise.race([everyWriterAcknowledged, Promise.allSettled(writers)]);
  first.child.kill('SIGKILL');
  stop = true;
  await Promise.allSettled(writers);
  await first.exited;
  for (const c of clients) c.close();
  t.is(acknowledged.size, 8, 'every writer got acknowledgements before the kill');

  const second = await startCli(t, args);
  const reader = await LineClient.connect(second.port);
  for (const [sid, n] of acknowledged) {
    t.is(await reader.request(`open ${sid} r`), 'ok', sid);
    const value = Number((await reader.request('get n'))!.slice(3));
    // The kill may land after a write reached disk but before its `ok` reached us.
    t.true(value === n || value === n + 1, `${sid}: acknowledged ${n}, found ${value}`);
  }
  reader.close();
  for (const name of await readdir(savePath)) {
    if (name.endsWith('.tmp')) continue;
    const text = await readFile(join(savePath, name), 'utf8');
    t.notThrows(() => JSON.parse(text), `${name} is whole`);
  }
  second.child.kill('SIGTERM');
  t.is(await second.exited, 0);
});

test('SIGTERM: in-flight commands finish, open sessions are written, exit code 0', async (t) => {
  const savePath = await tempDir(t);
  const args = ['--storage', 'filesystem', '--save-path', savePath, '--log-level', 'info'];
  const server = await startCli(t, args);
  const holder = await LineClient.connect(server.port);
  const sid = (await holder.request('new'))!.slice(3);
  t.is(await holder.request('put unsaved yes'), 'ok');
  server.child.kill('SIGTERM');
  t.is(await server.exited, 0);
  t.true(await holder.closedByServer(), 'clients are disconnected');
  t.regex(server.output(), /stopping/);

  const again = await startCli(t, args);
  const reader = await LineClient.connect(again.port);
  t.is(await reader.request(`open ${sid} r`), 'ok');
  t.is(await reader.request('get unsaved'), 'ok yes');
  reader.close();
});
