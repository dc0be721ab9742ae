import test from 'ava';
import { startServer, tempDir } from './support/server.js';
import { stats, until } from './support/wait.js';
import { packageInfo } from '../lib/core/package-info.js';

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

test('hello names the server, version, protocol level, capabilities and storage', async (t) => {
  const { connect } = await startServer(t);
  const c = await connect();
  const reply = (await c.request('hello'))!;
  t.true(reply.startsWith(`ok sessionserver ${packageInfo.version} protocol=1 `), reply);
  t.regex(reply, /capabilities=\S*get_all_json\S*/);
  t.regex(reply, /storage=memory$/);
});

test('help lists every routed command with its usage, from the same registry', async (t) => {
  const { connect, server } = await startServer(t);
  const c = await connect();
  const reply = (await c.request('help'))!;
  const usages = reply.slice(3).split('; ');
  t.deepEqual(usages, server.commands.list().map((entry) => entry.usage));
  for (const name of ['new', 'open', 'close', 'commit', 'destroy', 'put', 'get', 'exists', 'remove', 'keys', 'regenerate_id', 'get_all', 'put_all', 'hello', 'help', 'ping', 'quit', 'gc', 'touch', 'stats']) {
    t.true(usages.some((usage) => usage.split(' ')[0] === name), name);
  }
  t.is(await c.request('help get'), 'ok get <key> - read a value');
  t.is(await c.request('help GET'), 'ok get <key> - read a value');
  t.is(await c.request('help frobnicate'), 'err unknown command');
});

test('ping and quit', async (t) => {
  const { connect } = await startServer(t);
  const c = await connect();
  t.is(await c.request('ping'), 'ok pong');
  c.socket.write('quit\nping\n');
  t.is(await c.read(), 'ok');
  t.is(await c.read(), null, 'closed after quit; later lines are not run');
});

test('get_all json and put_all {json}', async (t) => {
  const { connect } = await startServer(t);
  const c = await connect();
  await c.request('new');
  t.is(await c.request('put_all {"user":"zoë","n":3,"ok":true,"with space":"a b"}'), 'ok');
  t.is(await c.request('get_all json'), 'ok {"user":"zoë","n":"3","ok":"true","with space":"a b"}');
  t.is(await c.request('get n'), 'ok 3');
  t.is(await c.request('get_all JSON'), 'ok {"user":"zoë","n":"3","ok":"true","with space":"a b"}');
  t.is(await c.request('get_all xml'), 'err get_all takes no argument or json');
});

test('put_all names the problem with a bad payload and changes nothing', async (t) => {
  const { connect } = await startServer(t);
  const c = await connect();
  await c.request('new');
  await c.request('put keep me');
  t.is(await c.request('put_all {"a":"secret'), 'err put_all: invalid JSON', 'no piece of the payload echoed');
  t.is(await c.request('put_all [1,2]'), 'err put_all needs a PHP-serialized array (a:...) or a JSON object ({...})');
  t.is(await c.request('put_all {"nested":{"a":1}}'), 'err put_all: value of "nested" must be a string, number or boolean');
  t.regex((await c.request('put_all a:1:{s:1:"k";s:99:"short";}'))!, /^err put_all: invalid PHP-serialized data/);
  t.regex((await c.request('put_all a:1:{s:1:"o";O:8:"stdClass":0:{}}'))!, /^err put_all: invalid PHP-serialized data/);
  t.is(await c.request('put_all a:1:{s:1:"k";a:0:{}}'), 'err put_all: value of "k" must be a scalar');
  t.is(await c.request('put_all'), 'err put_all needs a PHP-serialized array (a:...) or a JSON object ({...})');
  t.is(await c.request('keys'), 'ok keep');
});

test('gc deletes idle sessions, never one held open, and counts them', async (t) => {
  const { connect } = await startServer(t);
  const c = await connect();
  const holder = await connect();
  for (const sid of ['old1', 'old2', 'held']) {
    await c.request(`open ${sid} rw`);
    await c.request('put x 1');
    await c.request('close');
  }
  await holder.request('open held r');
  await sleep(1100);
  await c.request('open fresh rw');
  await c.request('close');
  t.is(await c.request('gc 1'), 'ok 2');
  t.is(await c.request('open old1 r'), 'err Could not open session.');
  t.is(await c.request('open held r'), 'ok');
  t.is(await c.request('open fresh r'), 'ok');
  t.is(await c.request('gc'), 'ok 0', 'default max lifetime: nothing that old');
  t.is(await c.request('gc -5'), 'err gc takes a whole number of seconds');
  t.is(await c.request('gc soon'), 'err gc takes a whole number of seconds');
});

test('touch marks the session accessed so gc spares it', async (t) => {
  const savePath = await tempDir(t);
  const { connect } = await startServer(t, { storage: 'filesystem', savePath, gcInterval: 0 });
  const c = await connect();
  for (const sid of ['touched', 'forgotten']) {
    await c.request(`open ${sid} rw`);
    await c.request('put x 1');
    await c.request('close');
  }
  await sleep(2100);
  t.deepEqual(await c.pipeline(['open touched r', 'touch', 'close']), ['ok', 'ok', 'ok']);
  t.is(await c.request('gc 2'), 'ok 1', 'only the one idle for more than two seconds');
  t.is(await c.request('open forgotten r'), 'err Could not open session.');
  t.is(await c.request('open touched r'), 'ok');
});

test('the periodic sweep expires idle sessions by itself, never one held open', async (t) => {
  const savePath = await tempDir(t);
  const { connect } = await startServer(t, { storage: 'filesystem', savePath, maxLifetime: 1, gcInterval: 1 });
  const c = await connect();
  const holder = await connect();
  for (const sid of ['held', 'forgotten']) {
    await c.request(`open ${sid} rw`);
    await c.request('put x 1');
    await c.request('close');
  }
  t.is(await holder.request('open held r'), 'ok');
  // No gc command is sent: the sweep's own counter says when it has collected.
  await until(async () => Number((await stats(c)).gc_collected) > 0, 'the sweep collected the idle session');
  t.is((await stats(c)).gc_collected, '1');
  t.is(await c.request('open forgotten r'), 'err Could not open session.', 'expired by the periodic sweep');
  t.is(await holder.request('get x'), 'ok 1');
  t.is(await c.request('open held r'), 'ok', 'held open: never collected');
});

test('stats reports counters as name=value pairs', async (t) => {
  const startedBefore = Date.now();
  const { connect } = await startServer(t, { lockTimeout: 100 });
  const a = await connect();
  const b = await connect();
  await a.request('open s rw');
  t.is(await b.request('open s rw'), 'err Session is locked');
  await b.request('bogus');
  const reply = (await b.request('stats'))!;
  t.regex(reply, /^ok /);
  const fields = Object.fromEntries(reply.slice(3).split(' ').map((pair) => pair.split('=')));
  t.is(fields.connections, '2');
  t.is(fields.storage, 'memory');
  t.is(fields.lock_waits, '1');
  t.is(fields.lock_timeouts, '1');
  t.is(fields.unknown_commands, '1');
  t.is(fields.sessions_held, '1');
  t.is(fields.commands, '4');
  // Whole seconds since the server started, which was after startedBefore.
  t.regex(fields.uptime!, /^\d+$/);
  t.true(Number(fields.uptime) <= Math.ceil((Date.now() - startedBefore) / 1000), `uptime ${fields.uptime}`);
});
