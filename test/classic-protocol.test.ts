import test from 'ava';
import { startServer } from './support/server.js';
import { writersQueued } from './support/wait.js';

const SID = /^ok [0-9a-f]{32}$/;

test('the example exchange of PROTOCOL.md, reply for reply', async (t) => {
  const { connect } = await startServer(t);
  const c = await connect();
  const created = await c.request('new');
  t.regex(created!, SID);
  const sid = created!.slice(3);
  t.is(await c.request('put time 1100000000'), 'ok');
  t.is(await c.request('put foo bar'), 'ok');
  t.is(await c.request('keys'), 'ok time|foo');
  t.is(await c.request('close'), 'ok');
  t.is(await c.request(`open ${sid} r`), 'ok');
  t.is(await c.request('get foo'), 'ok bar');
  t.is(await c.request('put foo baz'), 'err Could not store value');
  t.is(await c.request('frobnicate'), 'err unknown command');
});

test('values keep their spaces; a missing value stores the empty string', async (t) => {
  const { connect } = await startServer(t);
  const c = await connect();
  await c.request('new');
  t.is(await c.request('put greeting hello big world'), 'ok');
  t.is(await c.request('get greeting'), 'ok hello big world');
  t.is(await c.request('put padded  two leading'), 'ok');
  t.is(await c.request('get padded'), 'ok  two leading');
  t.is(await c.request('put empty'), 'ok');
  t.is(await c.request('exists empty'), 'ok');
  t.is(await c.request('get empty'), 'ok');
});

test('the empty key: PHP save handler stores the whole session with `put  <data>` and reads it with a bare `get`', async (t) => {
  const { connect } = await startServer(t);
  const c = await connect();
  await c.request('new');
  t.is(await c.request('put  a|s:1:"x";'), 'ok');
  t.is(await c.request('get'), 'ok a|s:1:"x";');
  t.is(await c.request('exists'), 'ok');
  t.is(await c.request('keys'), 'ok', 'one empty key joins to an empty payload');
});

test('command words are case-insensitive; CR before LF and surrounding whitespace are dropped', async (t) => {
  const { connect } = await startServer(t);
  const c = await connect();
  t.regex((await c.request('NEW'))!, SID);
  t.is(await c.request('Put k v\r'), 'ok');
  t.is(await c.request('  GET k  \t'), 'ok v');
});

test('commands that need a session say so', async (t) => {
  const { connect } = await startServer(t);
  const c = await connect();
  for (const line of ['close', 'commit', 'destroy', 'put a b', 'get a', 'exists a', 'remove a', 'keys', 'regenerate_id', 'get_all', 'put_all a:0:{}', 'touch']) {
    t.is(await c.request(line), 'err No session opened.', line);
  }
});

test('get, exists and remove of a missing key', async (t) => {
  const { connect } = await startServer(t);
  const c = await connect();
  await c.request('new');
  t.is(await c.request('get nope'), 'err Key does not exist');
  t.is(await c.request('exists nope'), 'err Key does not exist');
  t.is(await c.request('remove nope'), 'err Key does not exist');
  await c.request('put yes 1');
  t.is(await c.request('remove yes'), 'ok');
  t.is(await c.request('exists yes'), 'err Key does not exist');
});

test('read-only mode refuses every change with the classic texts', async (t) => {
  const { connect } = await startServer(t);
  const c = await connect();
  const sid = (await c.request('new'))!.slice(3);
  await c.request('put a 1');
  await c.request('close');
  t.is(await c.request(`open ${sid} r`), 'ok');
  t.is(await c.request('put a 2'), 'err Could not store value');
  t.is(await c.request('remove a'), 'err Could not remove value');
  t.is(await c.request('destroy'), 'err Could not destroy session.');
  t.is(await c.request('regenerate_id'), 'err Could not regenerate session id.');
  t.is(await c.request('put_all a:0:{}'), 'err Could not store values.');
  t.is(await c.request('get a'), 'ok 1');
  t.is(await c.request('close'), 'ok');
});

test('open: modes r, w, rw (default rw); r needs an existing session; bad modes and ids fail', async (t) => {
  const { connect } = await startServer(t);
  const c = await connect();
  t.is(await c.request('open unknownsession r'), 'err Could not open session.');
  t.is(await c.request('open fresh1'), 'ok');
  t.is(await c.request('put a 1'), 'ok');
  t.is(await c.request('open fresh2 w'), 'ok', 'opening another first closes (writes) the held one');
  t.is(await c.request('put b 2'), 'ok');
  t.is(await c.request('open fresh1 r'), 'ok');
  t.is(await c.request('get a'), 'ok 1');
  t.is(await c.request('open fresh2 RW'), 'ok');
  t.is(await c.request('get b'), 'ok 2');
  t.is(await c.request('open fresh2 x'), 'err Could not open session.');
  t.is(await c.request('open'), 'err Could not open session.');
});

test('commit writes and continues read-only, releasing the writer lock', async (t) => {
  const { connect } = await startServer(t);
  const a = await connect();
  const b = await connect();
  t.is(await a.request('open s1 rw'), 'ok');
  await a.request('put n 1');
  t.is(await a.request('commit'), 'ok');
  t.is(await a.request('put n 2'), 'err Could not store value');
  t.is(await b.request('open s1 rw'), 'ok', 'the lock is free after commit');
  t.is(await b.request('get n'), 'ok 1');
});

test('destroy deletes the session', async (t) => {
  const { connect } = await startServer(t);
  const c = await connect();
  const sid = (await c.request('new'))!.slice(3);
  await c.request('put a 1');
  t.is(await c.request('destroy'), 'ok');
  t.is(await c.request('get a'), 'err No session opened.');
  t.is(await c.request(`open ${sid} r`), 'err Could not open session.');
});

test('regenerate_id moves pending and stored values to a fresh id and deletes the old one', async (t) => {
  const { connect } = await startServer(t);
  const c = await connect();
  const oldId = (await c.request('new'))!.slice(3);
  await c.request('put kept 1');
  await c.request('commit');
  await c.request(`open ${oldId} rw`);
  await c.request('put pending 2');
  const reply = await c.request('regenerate_id');
  t.regex(reply!, SID);
  const newId = reply!.slice(3);
  t.not(newId, oldId);
  t.is(await c.request('put after 3'), 'ok', 'still open and writable under the new id');
  t.is(await c.request('close'), 'ok');
  t.is(await c.request(`open ${oldId} r`), 'err Could not open session.');
  t.is(await c.request(`open ${newId} r`), 'ok');
  t.is(await c.request('keys'), 'ok kept|pending|after');
});

test('get_all answers a PHP-serialized array with byte lengths; put_all replaces everything', async (t) => {
  const { connect } = await startServer(t);
  const c = await connect();
  await c.request('new');
  await c.request('put time 1100000000');
  await c.request('put foo bar');
  t.is(await c.request('get_all'), 'ok a:2:{s:4:"time";s:10:"1100000000";s:3:"foo";s:3:"bar";}');
  t.is(await c.request('put_all a:2:{s:4:"name";s:6:"Zoë B";s:1:"n";i:7;}'), 'ok');
  t.is(await c.request('keys'), 'ok name|n');
  t.is(await c.request('get name'), 'ok Zoë B');
  t.is(await c.request('get n'), 'ok 7');
  t.is(await c.request('get_all'), 'ok a:2:{s:4:"name";s:6:"Zoë B";s:1:"n";s:1:"7";}');
  t.is(await c.request('put_all a:0:{}'), 'ok');
  t.is(await c.request('keys'), 'ok');
});

test("put_all takes PHP's scalar types and stores each as PHP casts it to a string", async (t) => {
  const { connect } = await startServer(t);
  const c = await connect();
  await c.request('new');
  // As PHP's serialize() writes them: floats, booleans, null, integer keys and values.
  const payload = 'a:9:{s:1:"f";d:9.5;s:1:"g";d:-0.25;s:1:"w";d:10;s:3:"inf";d:INF;s:3:"nan";d:NAN;s:1:"t";b:1;s:1:"z";b:0;s:1:"n";N;i:7;i:-3;}';
  t.is(await c.request(`put_all ${payload}`), 'ok');
  t.is(await c.request('get_all json'), 'ok {"7":"-3","f":"9.5","g":"-0.25","w":"10","inf":"INF","nan":"NAN","t":"1","z":"","n":""}');
  t.regex((await c.request('put_all a:1:{s:1:"b";b:2;}'))!, /^err put_all: invalid PHP-serialized data \(syntax error at byte \d+\)$/, 'a boolean is 0 or 1');
  t.regex((await c.request('put_all a:1:{s:1:"d";d:1.2.3;}'))!, /^err put_all: invalid PHP-serialized data/);
  t.is(await c.request('get f'), 'ok 9.5', 'a refused payload changes nothing');
});

test('pipelined requests are all answered, in order', async (t) => {
  const { connect } = await startServer(t);
  const c = await connect();
  const lines = ['new'];
  for (let i = 0; i < 500; i++) lines.push(`put k${i} v${i}`, `get k${i}`);
  lines.push('close', 'ping');
  const replies = await c.pipeline(lines);
  t.regex(replies[0]!, SID);
  for (let i = 0; i < 500; i++) {
    t.is(replies[1 + 2 * i], 'ok');
    t.is(replies[2 + 2 * i], `ok v${i}`);
  }
  t.deepEqual(replies.slice(-2), ['ok', 'ok pong']);
});

test('pipelined lines that follow an async command wait for it', async (t) => {
  const { connect, server } = await startServer(t);
  const holder = await connect();
  const c = await connect();
  await holder.request('open busy rw');
  await holder.request('put v held');
  // `open busy` must wait for holder; the lines after it must not run early.
  c.socket.write('open busy rw\nget v\nput v mine\nclose\n');
  await writersQueued(server.sessions.locks, 1);
  t.is(await holder.request('ping'), 'ok pong', 'the server went on serving others meanwhile');
  t.is(c.unread, 0, 'nothing after the waiting open was answered');
  t.is(await holder.request('close'), 'ok');
  t.deepEqual([await c.read(), await c.read(), await c.read(), await c.read()], ['ok', 'ok held', 'ok', 'ok']);
});
