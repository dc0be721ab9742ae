import test from 'ava';
import { startServer } from './support/server.js';
import { until, writersQueued } from './support/wait.js';

test('readers share a session and never wait for a writer; they see the last committed state', async (t) => {
  const { connect, server } = await startServer(t);
  const writer = await connect();
  const reader1 = await connect();
  const reader2 = await connect();
  await writer.request('open shared rw');
  await writer.request('put v 1');
  await writer.request('commit');
  t.is(await writer.request('open shared rw'), 'ok');
  await writer.request('put v 2');
  t.is(await reader1.request('open shared r'), 'ok', 'no wait for the writer');
  t.is(await reader2.request('open shared r'), 'ok');
  t.is(server.sessions.locks.waits, 0, 'readers never queued for the lock');
  t.is(await reader1.request('get v'), 'ok 1', 'uncommitted change is invisible');
  await writer.request('close');
  t.is(await reader2.request('open shared r'), 'ok');
  t.is(await reader2.request('get v'), 'ok 2');
});

test('a second writer waits until the first closes, then sees its changes', async (t) => {
  const { connect, server } = await startServer(t);
  const a = await connect();
  const b = await connect();
  await a.request('open s rw');
  await a.request('put owner a');
  b.send('open s w');
  await writersQueued(server.sessions.locks, 1);
  t.is(await a.request('put late yes'), 'ok', 'holder keeps working while b waits');
  t.is(b.unread, 0, 'b is not answered while a holds the session');
  t.is(await a.request('close'), 'ok');
  t.is(await b.read(), 'ok');
  // `late` reached the store only with a's close: b got in after it.
  t.is(await b.request('get late'), 'ok yes');
});

test('a writer that waits longer than the lock timeout gets err Session is locked', async (t) => {
  const { connect, server } = await startServer(t, { lockTimeout: 200 });
  const a = await connect();
  const b = await connect();
  await a.request('open s rw');
  t.is(await b.request('open s rw'), 'err Session is locked');
  // The err came from the wait's timer: b was queued, and its wait ended by timing out.
  t.is(server.sessions.locks.waits, 1);
  t.is(server.sessions.locks.timeouts, 1);
  t.is(await b.request('get x'), 'err No session opened.');
  t.is(await a.request('put still mine'), 'ok');
});

test('waiting writers are served in arrival order', async (t) => {
  const { connect, server } = await startServer(t);
  const holder = await connect();
  await holder.request('open q rw');
  await holder.request('put order start');
  const waiters = await Promise.all([1, 2, 3].map(() => connect()));
  // Each one is seen queued before the next asks: the arrival order is known, not hoped for.
  for (const [i, w] of waiters.entries()) {
    w.send('open q rw');
    await writersQueued(server.sessions.locks, i + 1);
  }
  await holder.request('close');
  for (const [i, w] of waiters.entries()) {
    t.is(await w.read(), 'ok');
    t.is(await w.request('get order'), i === 0 ? 'ok start' : `ok ${i - 1}`);
    await w.request(`put order ${i}`);
    await w.request('close');
  }
});

test('a client that vanishes mid-session: its pending changes are written and its lock freed', async (t) => {
  const { connect, server } = await startServer(t);
  const a = await connect();
  const b = await connect();
  await a.request('open gone rw');
  await a.request('put last words');
  b.send('open gone rw');
  await writersQueued(server.sessions.locks, 1);
  t.is(b.unread, 0);
  a.close();
  t.is(await b.read(), 'ok');
  t.is(await b.request('get last'), 'ok words');
});

test('a client that vanishes while waiting for a lock leaves no lock behind', async (t) => {
  const { connect, server } = await startServer(t);
  const holder = await connect();
  const quitter = await connect();
  const next = await connect();
  await holder.request('open s rw');
  quitter.send('open s rw');
  await writersQueued(server.sessions.locks, 1);
  // Gone for good (reset): a client that only half-closes (FIN) still gets its reply, so it waits on.
  quitter.socket.resetAndDestroy();
  await until(() => server.connections.size === 2, 'the server saw the quitter go');
  await holder.request('close');
  t.is(await next.request('open s rw'), 'ok');
  t.is(server.sessions.locks.waits, 1, 'next got the lock without queuing: nobody held it');
  t.is(server.sessions.locks.timeouts, 0);
});

test('locks are released on close, commit, destroy, regenerate_id and on opening another session', async (t) => {
  const { connect } = await startServer(t, { lockTimeout: 300 });
  const a = await connect();
  const b = await connect();
  const cases: Array<[string, string]> = [
    ['l1', 'close'],
    ['l2', 'commit'],
    ['l3', 'destroy'],
    ['l4', 'regenerate_id'],
    ['l5', 'open other rw'],
  ];
  for (const [sid, release] of cases) {
    await a.request(`open ${sid} rw`);
    t.regex((await a.request(release))!, /^ok/, release);
    t.is(await b.request(`open ${sid} rw`), 'ok', `free after ${release}`);
    await b.request('close');
  }
});

test('200 read-modify-write increments from 20 connections lose none', async (t) => {
  const { connect } = await startServer(t);
  const clients = await Promise.all(Array.from({ length: 20 }, () => connect()));
  await clients[0]!.request('open counter rw');
  await clients[0]!.request('put n 0');
  await clients[0]!.request('close');
  await Promise.all(
    clients.map(async (c) => {
      for (let i = 0; i < 10; i++) {
        t.is(await c.request('open counter rw'), 'ok');
        const n = Number((await c.request('get n'))!.slice(3));
        t.is(await c.request(`put n ${n + 1}`), 'ok');
        t.is(await c.request('close'), 'ok');
      }
    }),
  );
  await clients[0]!.request('open counter r');
  t.is(await clients[0]!.request('get n'), 'ok 200');
});
