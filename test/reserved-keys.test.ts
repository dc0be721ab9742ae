import test, { type ExecutionContext } from 'ava';
import { newSessionId, SessionClient, type SessionServerConfig } from '../lib/index.js';
import { postgresConfig, redisConfig } from './fixtures/stores.js';
import { startServer, tempDir } from './support/server.js';

// Keys that name what every JavaScript object inherits: stored, listed, read, serialized
// and replaced like any other key, in every store, both put_all/get_all forms and the client.
const RESERVED = ['constructor', '__proto__', 'toString', 'hasOwnProperty', 'valueOf', '__defineGetter__', 'isPrototypeOf'];
const valueOf = (key: string) => `value of ${key}`;

const DRIVERS: Array<{ name: string; config: (t: ExecutionContext) => Promise<SessionServerConfig> }> = [
  { name: 'memory', config: async () => ({ storage: 'memory' }) },
  { name: 'filesystem', config: async (t) => ({ storage: 'filesystem', savePath: await tempDir(t) }) },
  { name: 'redis', config: (t) => redisConfig(t) },
  { name: 'postgres', config: (t) => postgresConfig(t) },
];

/** PHP's serialize() of a string: its length in bytes. */
const phpString = (text: string) => `s:${Buffer.byteLength(text)}:"${text}";`;

for (const driver of DRIVERS) {
  test(`${driver.name}: put, get, exists, keys, get_all and remove treat prototype names as plain keys`, async (t) => {
    const { connect } = await startServer(t, await driver.config(t));
    const c = await connect();
    const sid = (await c.request('new'))!.slice(3);
    t.deepEqual(await c.pipeline(RESERVED.map((key) => `put ${key} ${valueOf(key)}`)), RESERVED.map(() => 'ok'));
    t.is(await c.request('close'), 'ok');

    t.is(await c.request(`open ${sid} r`), 'ok');
    t.deepEqual(await c.pipeline(RESERVED.map((key) => `get ${key}`)), RESERVED.map((key) => `ok ${valueOf(key)}`));
    t.deepEqual(await c.pipeline(RESERVED.map((key) => `exists ${key}`)), RESERVED.map(() => 'ok'));
    const keys = (await c.request('keys'))!.slice(3).split('|');
    t.deepEqual([...keys].sort(), [...RESERVED].sort());
    // get_all lists the values in the order keys does.
    const php = `a:${keys.length}:{${keys.map((key) => phpString(key) + phpString(valueOf(key))).join('')}}`;
    t.is(await c.request('get_all'), `ok ${php}`);
    const json = JSON.parse((await c.request('get_all json'))!.slice(3)) as Record<string, string>;
    t.deepEqual(Object.keys(json).sort(), [...RESERVED].sort());
    for (const key of RESERVED) t.is(Object.getOwnPropertyDescriptor(json, key)?.value, valueOf(key), key);

    t.is(await c.request(`open ${sid} rw`), 'ok');
    t.deepEqual(await c.pipeline(['remove __proto__', 'exists __proto__', 'get constructor', 'close']), [
      'ok',
      'err Key does not exist',
      `ok ${valueOf('constructor')}`,
      'ok',
    ]);
    t.is(await c.request(`open ${sid} r`), 'ok');
    t.is(await c.request('exists __proto__'), 'err Key does not exist');
    t.is(await c.request('get toString'), `ok ${valueOf('toString')}`);
  });

  test(`${driver.name}: put_all in both forms stores prototype names as plain keys`, async (t) => {
    const { connect } = await startServer(t, await driver.config(t));
    const c = await connect();
    const fromJson = (await c.request('new'))!.slice(3);
    const object = `{${RESERVED.map((key) => `${JSON.stringify(key)}:${JSON.stringify(valueOf(key))}`).join(',')}}`;
    t.deepEqual(await c.pipeline([`put_all ${object}`, 'close']), ['ok', 'ok']);
    const fromPhp = (await c.request('new'))!.slice(3);
    const array = `a:${RESERVED.length}:{${RESERVED.map((key) => phpString(key) + phpString(valueOf(key))).join('')}}`;
    t.deepEqual(await c.pipeline([`put_all ${array}`, 'close']), ['ok', 'ok']);

    for (const sid of [fromJson, fromPhp]) {
      t.is(await c.request(`open ${sid} r`), 'ok');
      t.deepEqual(await c.pipeline(RESERVED.map((key) => `get ${key}`)), RESERVED.map((key) => `ok ${valueOf(key)}`), sid === fromPhp ? 'PHP' : 'JSON');
    }
  });
}

test('the Node client reads and writes prototype names as plain keys', async (t) => {
  const { port } = await startServer(t, { storage: 'memory' });
  const client = await SessionClient.connect({ port });
  t.teardown(() => client.quit().catch(() => {}));
  const sid = newSessionId();
  await client.open(sid, 'rw');
  await client.putAll(Object.fromEntries(RESERVED.map((key) => [key, valueOf(key)])));
  await client.close();
  await client.open(sid, 'r');
  const all = await client.getAll();
  t.deepEqual(Object.keys(all).sort(), [...RESERVED].sort());
  for (const key of RESERVED) {
    t.is(Object.getOwnPropertyDescriptor(all, key)?.value, valueOf(key), key);
    t.is(await client.get(key), valueOf(key), key);
    t.true(await client.exists(key), key);
  }
  t.deepEqual((await client.keys()).sort(), [...RESERVED].sort());
  await client.close();
});
