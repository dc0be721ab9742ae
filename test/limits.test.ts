import { connect } from 'node:net';
import test from 'ava';
import { LineClient } from './support/line-client.js';
import { startServer } from './support/server.js';
import { until } from './support/wait.js';

test('a line over the limit gets err, its rest is discarded, the connection goes on', async (t) => {
  const { connect: open } = await startServer(t, { maxLineLength: 1024 });
  const c = await open();
  await c.request('new');
  t.is(await c.request(`put big ${'x'.repeat(5000)}`), 'err Line too long (limit 1024 bytes)');
  t.is(await c.request('exists big'), 'err Key does not exist');
  // Sent in pieces: the server answers as soon as the limit is passed and drops the rest.
  c.socket.write(`put big2 ${'y'.repeat(3000)}`);
  t.is(await c.read(), 'err Line too long (limit 1024 bytes)');
  c.socket.write(`${'y'.repeat(3000)}\nping\n`);
  t.is(await c.read(), 'ok pong');
  t.is(await c.request(`put fits ${'z'.repeat(1000)}`), 'ok');
});

test('binary junk gets errors, then a clean close; the server and other clients carry on', async (t) => {
  const { connect: open } = await startServer(t);
  const bystander = await open();
  await bystander.request('open calm rw');
  const junk = await open();
  const bytes = Buffer.alloc(4096);
  for (let i = 0; i < bytes.length; i++) bytes[i] = (i * 7919) % 256;
  junk.socket.write(bytes);
  junk.socket.write('\n'.repeat(20));
  t.true(await junk.closedByServer(), 'closed after too many unknown commands');
  t.is(await bystander.request('put still fine'), 'ok');
  t.is(await bystander.request('get still'), 'ok fine');
});

test('unknown commands: err each time, and too many in a row close the connection', async (t) => {
  const { connect: open } = await startServer(t, { maxUnknownCommands: 3 });
  const c = await open();
  t.is(await c.request('nope'), 'err unknown command');
  t.is(await c.request('ping'), 'ok pong', 'a known command resets the count');
  t.is(await c.request('nope'), 'err unknown command');
  t.is(await c.request('nope'), 'err unknown command');
  t.is(await c.request('nope'), 'err Too many unknown commands');
  t.true(await c.closedByServer());
});

test('an HTTP request line is refused and the connection closed before any later line runs', async (t) => {
  const { connect: open, server } = await startServer(t);
  const c = await open();
  c.socket.write('POST / HTTP/1.1\r\nHost: localhost\r\nContent-Type: text/plain\r\n\r\nnew\nput pwned 1\n');
  t.is(await c.read(), 'err HTTP requests are not accepted on this port');
  t.is(await c.read(), null);
  t.is(server.sessions.opened, 0, 'the body was never run');
});

test('connections beyond the limit are told so and closed', async (t) => {
  const { connect: open, port } = await startServer(t, { maxConnections: 2 });
  const a = await open();
  const b = await open();
  const c = await LineClient.connect(port);
  t.is(await c.read(), 'err Too many connections');
  t.is(await c.read(), null);
  t.is(await a.request('ping'), 'ok pong');
  t.is(await b.request('ping'), 'ok pong');
});

test('an idle client is disconnected after the idle timeout; its session is written', async (t) => {
  const { connect: open } = await startServer(t, { idleTimeout: 1 });
  const idle = await open();
  await idle.request('open sleepy rw');
  await idle.request('put kept yes');
  t.is(await idle.read(), 'err Idle timeout');
  t.true(await idle.closedByServer());
  const next = await open();
  t.is(await next.request('open sleepy r'), 'ok');
  t.is(await next.request('get kept'), 'ok yes');
});

test('a value that cannot travel on one line is refused, never sent broken', async (t) => {
  const { connect: open } = await startServer(t);
  const c = await open();
  await c.request('new');
  t.is(await c.request('put_all {"multi":"line1\\nline2","cr":"a\\rb","fine":"ok"}'), 'ok');
  t.is(await c.request('get multi'), 'err Value cannot be sent on one line');
  t.is(await c.request('get cr'), 'err Value cannot be sent on one line');
  t.is(await c.request('get_all'), 'err Value cannot be sent on one line');
  t.is(await c.request('get_all json'), 'ok {"multi":"line1\\nline2","cr":"a\\rb","fine":"ok"}');
  t.is(await c.request('get fine'), 'ok ok');
});

test('a client that sends but never reads replies is paused, not buffered without bound', async (t) => {
  const { connect: open, server, port } = await startServer(t);
  const socket = connect(port, '127.0.0.1');
  await new Promise((resolve) => socket.once('connect', resolve));
  socket.on('error', () => {});
  socket.write(`new\nput big ${'b'.repeat(100_000)}\n`);
  socket.pause(); // never read a reply: each `get big` asks for 100 KB
  await until(() => server.connections.size === 1, 'the server has the connection');
  const [connection] = server.connections;
  socket.write('get big\n'.repeat(10_000));
  await until(() => connection!.socket.isPaused(), 'the server stops reading from the client');
  t.true(connection!.socket.writableLength < 64 * 1024 * 1024, `server holds ${connection!.socket.writableLength} unsent bytes`);
  socket.destroy();
  const c = await open();
  t.is(await c.request('ping'), 'ok pong', 'server unharmed');
});

test('a paused client that reads again gets every reply, in order, and is served as before', async (t) => {
  const { connect: open, server } = await startServer(t);
  const c = await open();
  const big = 'b'.repeat(100_000);
  t.deepEqual(await c.pipeline(['new', `put big ${big}`]).then((r) => r.map((line) => line!.slice(0, 3))), ['ok ', 'ok']);
  c.socket.pause();
  // 40 MB of replies: more than the kernel buffers hold, so the server has to wait for the client.
  c.socket.write('get big\n'.repeat(400) + 'ping\n');
  const [connection] = server.connections;
  await until(() => connection!.socket.isPaused(), 'the server stops reading from the client');
  c.socket.resume();
  let replies = 0;
  for (let i = 0; i < 400; i++) if ((await c.read()) === `ok ${big}`) replies++;
  t.is(replies, 400);
  t.is(await c.read(), 'ok pong', 'the line after them ran once they were read');
  t.false(connection!.socket.isPaused(), 'reading from the client again');
  t.is(await c.request('get missing'), 'err Key does not exist');
});
