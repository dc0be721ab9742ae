import { getHeapStatistics } from 'node:v8';
import test from 'ava';
import { LineClient } from './support/line-client.js';
import { startServer, tempDir } from './support/server.js';
import { until } from './support/wait.js';
import type { MemoryStore } from '../lib/storage/memory.js';

const MiB = 1024 * 1024;
const MEGABYTE_VALUE = 'x'.repeat(1_000_000);

test('a put past maxSessionSize gets err Session too large; the session keeps its previous content', async (t) => {
  const { connect } = await startServer(t, { maxSessionSize: 1000 });
  const c = await connect();
  await c.request('open sized rw');
  t.is(await c.request(`put a ${'a'.repeat(600)}`), 'ok');
  t.is(await c.request(`put b ${'b'.repeat(400)}`), 'err Session too large (limit 1000 bytes)', '1 + 600 + 1 + 400 bytes');
  t.is(await c.request('exists b'), 'err Key does not exist', 'the refused put changed nothing');
  t.is(await c.request(`put b ${'b'.repeat(397)}`), 'ok', 'exactly 1000 bytes fit');
  // Bytes, not characters: é is two bytes in UTF-8.
  t.is(await c.request(`put a ${'é'.repeat(301)}`), 'err Session too large (limit 1000 bytes)', '602 bytes instead of 600: one too many');
  t.is(await c.request('get a'), `ok ${'a'.repeat(600)}`);
  // Replacing a value counts the new one instead of the old one; shrinking always fits.
  t.is(await c.request(`put a ${'é'.repeat(100)}`), 'ok');
  t.is(await c.request(`put c ${'c'.repeat(300)}`), 'ok');
  t.is(await c.request('remove c'), 'ok');
  t.is(await c.request(`put c ${'c'.repeat(300)}`), 'ok', 'removing gave its bytes back');
  t.is(await c.request(`put_all {"x":"${'x'.repeat(1000)}"}`), 'err Session too large (limit 1000 bytes)');
  t.is(await c.request('keys'), 'ok a|b|c', 'the refused put_all changed nothing');
  t.is(await c.request(`put_all {"x":"${'x'.repeat(900)}"}`), 'ok');
  t.is(await c.request('close'), 'ok');
  t.is(await c.request('open sized r'), 'ok');
  t.is(await c.request('get x'), `ok ${'x'.repeat(900)}`);
});

test('filesystem store, default limit: 1 MB puts stop at 16 MiB with err, close writes every acknowledged one', async (t) => {
  // A 16 MiB write on a busy test machine may take a while; this test is about size, not speed.
  const { connect } = await startServer(t, { storage: 'filesystem', savePath: await tempDir(t), storageTimeout: 60_000 });
  const c = await connect();
  await c.request('open bulky rw');
  const replies: Array<string | null> = [];
  for (let i = 0; i < 20; i++) replies.push(await c.request(`put k${String(i).padStart(2, '0')} ${MEGABYTE_VALUE}`));
  const accepted = replies.filter((reply) => reply === 'ok').length;
  t.is(accepted, 16, '16 x (3 + 1,000,000) bytes fit in 16 MiB, a 17th does not');
  t.deepEqual(new Set(replies.slice(16)), new Set([`err Session too large (limit ${16 * MiB} bytes)`]));
  t.is(await c.request('close'), 'ok');
  const reader = await connect();
  t.is(await reader.request('open bulky r'), 'ok');
  t.is((await reader.request('keys'))?.split('|').length, 16);
  t.is(await reader.request('get k15'), `ok ${MEGABYTE_VALUE}`);
  t.is(await reader.request('exists k16'), 'err Key does not exist');
});

test('memory store: 8 clients writing 1 MB sessions in a loop hit maxMemory; writes get err, reads go on', async (t) => {
  const { connect } = await startServer(t, { maxMemory: 10 * MiB });
  const stored: string[] = [];
  const refusals: Array<string | null> = [];
  await Promise.all(
    Array.from({ length: 8 }, async (_, n) => {
      const c = await connect();
      for (let i = 0; i < 4; i++) {
        const id = `flood${n}x${i}`;
        await c.request(`open ${id} rw`);
        await c.request(`put before kept`);
        const reply = await c.request(`put v ${MEGABYTE_VALUE}`);
        if (reply === 'ok') {
          if ((await c.request('close')) === 'ok') stored.push(id);
          continue;
        }
        refusals.push(reply);
        t.is(await c.request('get before'), 'ok kept', 'the session is still usable');
        t.is(await c.request('exists v'), 'err Key does not exist', 'the refused put changed nothing');
        await c.request('close');
      }
    }),
  );
  t.true(refusals.length > 0, 'the store filled up');
  t.deepEqual(new Set(refusals), new Set(['err Storage memory limit reached (maxMemory)']));
  t.is(stored.length, 10, 'ten sessions of 1,000,011 bytes fit in 10 MiB, an eleventh does not');
  const reader = await connect();
  for (const id of stored) {
    t.is(await reader.request(`open ${id} r`), 'ok');
    t.is(await reader.request('get v'), `ok ${MEGABYTE_VALUE}`, `${id} stays readable`);
  }
  // Deleting frees room: writes work again.
  await reader.request(`open ${stored[0]} rw`);
  t.is(await reader.request('destroy'), 'ok');
  await reader.request('open again rw');
  t.is(await reader.request(`put v ${MEGABYTE_VALUE}`), 'ok');
  t.is(await reader.request('close'), 'ok');
  t.is(await reader.request('ping'), 'ok pong');
});

test('a save refused by a full store changes nothing: commit keeps the changes pending, close keeps the stored copy', async (t) => {
  const { connect } = await startServer(t, { maxMemory: 1000 });
  const a = await connect();
  const b = await connect();
  await a.request('open first rw');
  await b.request('open second rw');
  // Each fits on its own; together they do not: the later save is refused.
  t.is(await a.request(`put v ${'a'.repeat(600)}`), 'ok');
  t.is(await b.request(`put v ${'b'.repeat(600)}`), 'ok');
  t.is(await a.request('close'), 'ok');
  t.is(await b.request('commit'), 'err Storage memory limit reached (maxMemory)');
  t.is(await b.request('get v'), `ok ${'b'.repeat(600)}`, 'still pending in the session');
  t.is(await b.request(`put v ${'b'.repeat(300)}`), 'ok', 'still writable: the commit did not happen');
  t.is(await b.request('commit'), 'ok');
  t.is(await b.request('open second rw'), 'ok');
  t.is(await b.request(`put w ${'w'.repeat(200)}`), 'err Storage memory limit reached (maxMemory)', 'checked at the put: it could not be saved');
  t.is(await b.request('close'), 'ok');
  const reader = await connect();
  t.is(await reader.request('open second r'), 'ok');
  t.is(await reader.request('get v'), `ok ${'b'.repeat(300)}`);
});

test("the memory store's default maxMemory is a quarter of the V8 heap limit; 0 means no limit", async (t) => {
  const byDefault = await startServer(t);
  t.is((byDefault.server.store as MemoryStore).maxMemory, Math.floor(getHeapStatistics().heap_size_limit / 4));
  const unlimited = await startServer(t, { maxMemory: 0 });
  t.is((unlimited.server.store as MemoryStore).maxMemory, Number.POSITIVE_INFINITY);
});

test('unfinished lines across connections stay within maxInputBuffer; every line completes and is answered', async (t) => {
  const limit = 256 * 1024;
  const { connect, server } = await startServer(t, { maxInputBuffer: limit });
  const clients = await Promise.all(Array.from({ length: 12 }, () => connect()));
  for (const [n, c] of clients.entries()) t.is(await c.request(`open budget${n} rw`), 'ok');
  const value = (n: number) => String(n % 10).repeat(100 * 1024);
  // Every client sends all of a 100 KiB line except its newline: 1.2 MiB of unfinished lines.
  for (const [n, c] of clients.entries()) c.socket.write(`put v ${value(n)}`);
  await until(() => server.inputBudget.waitingCount > 0, 'some connections wait for the input budget');
  // The limit, one line allowed to finish past it, and at most one read per waiting connection.
  const bound = limit + 100 * 1024 + 64 * 1024 * server.inputBudget.waitingCount;
  t.true(server.inputBudget.bytes <= bound, `${server.inputBudget.bytes} bytes buffered (bound ${bound})`);
  for (const c of clients) c.socket.write('\n');
  for (const [n, c] of clients.entries()) {
    t.is(await c.read(), 'ok');
    t.is(await c.request('get v'), `ok ${value(n)}`, 'nothing was lost while reading paused');
  }
  t.is(server.inputBudget.bytes, 0);
});

test('a budget smaller than one line: lines still complete one at a time, none waits forever', async (t) => {
  const { connect, server } = await startServer(t, { maxInputBuffer: 1024 });
  const clients = await Promise.all(Array.from({ length: 4 }, () => connect()));
  const line = (n: number) => `put v ${String(n).repeat(200 * 1024)}`;
  for (const [n, c] of clients.entries()) {
    await c.request(`open tiny${n} rw`);
    c.socket.write(line(n));
  }
  await until(() => server.inputBudget.waitingCount > 0, 'some connections wait for the input budget');
  for (const c of clients) c.socket.write('\n');
  t.deepEqual(await Promise.all(clients.map((c) => c.read())), ['ok', 'ok', 'ok', 'ok']);
  t.is(await clients[3]!.request('get v'), `ok ${'3'.repeat(200 * 1024)}`);
  const other = await LineClient.connect((server.address()!).port);
  t.teardown(() => other.close());
  t.is(await other.request('ping'), 'ok pong');
});
