import { createServer, type Server, type Socket } from 'node:net';
import test, { type ExecutionContext } from 'ava';
import {
  SessionClient,
  SessionConnectionError,
  SessionLostError,
  SessionServer,
  SessionServerError,
  SessionTimeoutError,
  type SessionClientOptions,
} from '../lib/index.js';
import { startServer } from './support/server.js';

// The TypeScript client against a real server over real sockets.

async function client(t: ExecutionContext, port: number, options: SessionClientOptions = {}): Promise<SessionClient> {
  const c = await SessionClient.connect({ port, ...options });
  t.teardown(() => c.disconnect());
  return c;
}

/** Drops every connection from the server side, as a crash or a network cut would. */
function cutConnections(server: SessionServer): void {
  for (const connection of server.connections) connection.socket.destroy();
}

/** A TCP server that accepts and then says nothing: for timeouts. */
async function silentServer(t: ExecutionContext): Promise<{ port: number; sockets: Socket[] }> {
  const sockets: Socket[] = [];
  const server: Server = createServer((socket) => {
    sockets.push(socket);
    socket.on('error', () => {});
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.teardown(() => {
    for (const socket of sockets) socket.destroy();
    server.close();
  });
  return { port: (server.address() as { port: number }).port, sockets };
}

test('every command is a method; values, modes and session state follow the replies', async (t) => {
  const { port } = await startServer(t, { listSessionIds: true });
  const c = await client(t, port);
  t.is(await c.ping(), 'pong');
  const sid = await c.create();
  t.regex(sid, /^[0-9a-f]{32}$/);
  t.is(c.sessionId, sid);
  t.is(c.mode, 'rw');
  await c.put('user', 'alice');
  await c.put('visits', 3);
  await c.put('', 'the empty key');
  t.is(await c.get('user'), 'alice');
  t.is(await c.get('visits'), '3');
  t.is(await c.get(''), 'the empty key');
  t.is(await c.get('missing'), undefined);
  t.true(await c.exists('user'));
  t.false(await c.exists('missing'));
  t.true(await c.remove(''));
  t.false(await c.remove(''));
  t.deepEqual(await c.keys(), ['user', 'visits']);
  await c.setTtl(600);
  t.is(await c.ttl(), 600);
  await c.commit();
  t.is(c.mode, 'r');
  await t.throwsAsync(c.put('user', 'mallory'), { instanceOf: SessionServerError, message: 'Could not store value' });
  await c.touch();
  await c.close();
  t.is(c.sessionId, null);
  t.deepEqual(await c.ids(), [sid]);

  await c.open(sid, 'rw');
  const moved = await c.regenerateId();
  t.is(c.sessionId, moved);
  t.deepEqual(await c.getAll(), { user: 'alice', visits: '3' });
  // putAll travels as JSON: line breaks, trailing blanks and any Unicode survive.
  const awkward = { note: 'two\nlines\r\n', padded: 'x  ', emoji: 'café ☕', n: 42, yes: true };
  await c.putAll(awkward);
  await c.close();
  await c.open(moved, 'r');
  t.deepEqual(await c.getAll(), { note: 'two\nlines\r\n', padded: 'x  ', emoji: 'café ☕', n: '42', yes: 'true' });
  await c.open(moved, 'w');
  await c.destroy();
  t.is(c.sessionId, null);
  await t.throwsAsync(c.open(moved, 'r'), { instanceOf: SessionServerError, message: 'Could not open session.' });

  const hello = await c.hello();
  t.is(hello.name, 'sessionserver');
  t.is(hello.protocol, 1);
  t.true(hello.capabilities.includes('ttl'));
  t.is(hello.fields.storage, 'memory');
  t.regex(await c.help(), /open <sid>/);
  t.regex(await c.help('ttl'), /^ttl \[seconds\|default\] - /);
  t.is((await c.stats()).storage, 'memory');
  t.is(await c.gc(3600), 0, 'nothing idle for an hour');
});

test('server errors reject with SessionServerError carrying the server text; bad input is refused before sending', async (t) => {
  const { port } = await startServer(t);
  const c = await client(t, port);
  const error = await t.throwsAsync(c.get('x'), { instanceOf: SessionServerError });
  t.is(error.message, 'No session opened.');
  t.is(error.command, 'get');
  await t.throwsAsync(c.request('frobnicate'), { instanceOf: SessionServerError, message: 'unknown command' });
  await t.throwsAsync(c.open('../etc/passwd'), { instanceOf: TypeError });
  await t.throwsAsync(c.open('abc', 'x' as 'r'), { instanceOf: TypeError });
  await c.create();
  await t.throwsAsync(c.put('a key', 'v'), { instanceOf: TypeError });
  await t.throwsAsync(c.put('k', 'line\nbreak'), { instanceOf: TypeError, message: /putAll/ });
  await t.throwsAsync(c.put('k', 'trailing '), { instanceOf: TypeError, message: /putAll/ });
  await t.throwsAsync(c.request('put a b\nget a'), { instanceOf: TypeError });
  await t.throwsAsync(c.putAll({ nested: { no: 1 } } as never), { instanceOf: SessionServerError, message: /must be a string, number or boolean/ });
  // The connection is still in step after all of that.
  await c.put('k', 'v');
  t.is(await c.get('k'), 'v');
});

test('requests pipeline on one socket and settle in request order', async (t) => {
  const { port, server } = await startServer(t);
  const c = await client(t, port);
  await c.create();
  const order: number[] = [];
  const requests: Array<Promise<unknown>> = [];
  for (let i = 0; i < 300; i++) {
    const request = i % 3 === 2 ? c.get(`k${i - 1}`) : c.put(`k${i}`, `v${i}`);
    requests.push(request.then((value) => {
      order.push(i);
      return value;
    }));
  }
  t.true(c.inFlight > 100, 'all were written before the first reply came back');
  const values = await Promise.all(requests);
  t.deepEqual(order, [...Array(300).keys()]);
  for (let i = 2; i < 300; i += 3) t.is(values[i], `v${i - 1}`);
  t.is(server.connections.size, 1);
});

test('read timeout: no reply within timeout rejects with SessionTimeoutError and drops the connection', async (t) => {
  const { port } = await silentServer(t);
  const c = await client(t, port, { timeout: 200, reconnect: false });
  const [first, second] = await Promise.allSettled([c.ping(), c.ping()]);
  t.true(first.status === 'rejected' && first.reason instanceof SessionTimeoutError);
  t.true(second.status === 'rejected' && second.reason instanceof SessionConnectionError);
  t.false(c.connected);
  await t.throwsAsync(c.ping(), { instanceOf: SessionConnectionError, message: 'Not connected' });
});

test('connect timeout and refused connections reject SessionClient.connect', async (t) => {
  // A TLS handshake that the silent server never answers: the connection never becomes ready.
  const { port } = await silentServer(t);
  await t.throwsAsync(SessionClient.connect({ port, tls: { rejectUnauthorized: false }, connectTimeout: 200 }), { instanceOf: SessionTimeoutError });
  // A port nobody listens on (any more).
  const { server } = await startServer(t);
  const freePort = server.address()!.port;
  await server.close();
  const error = await t.throwsAsync(SessionClient.connect({ port: freePort }), { instanceOf: SessionConnectionError });
  t.is(error.code, 'ECONNREFUSED');
});

test('a client without a session reconnects with back-off, replays auth, and its queued requests go through', async (t) => {
  const token = 'secret-token-for-the-test';
  const config = { plugins: [['auth', { tokens: [token] }]] as never };
  const first = await startServer(t, config);
  const port = first.port;
  const c = await client(t, port, { reconnect: { minDelay: 20, maxDelay: 100 } });
  await c.auth(token);
  t.is(await c.ping(), 'pong');
  t.is(await c.gc(3600), 0);
  const reconnecting: number[] = [];
  let secondAttempt: () => void;
  const twoAttempts = new Promise<void>((resolve) => (secondAttempt = resolve));
  c.on('reconnecting', ({ attempt }: { attempt: number }) => {
    reconnecting.push(attempt);
    if (reconnecting.length === 2) secondAttempt();
  });

  // The server goes away and comes back on the same port, after the client has tried twice.
  const noticed = new Promise((resolve) => c.once('disconnect', resolve));
  await first.server.close();
  await noticed;
  const during = c.gc(3600);
  await twoAttempts;
  t.false(c.connected, 'nobody to connect to yet');
  const second = new SessionServer({ logLevel: 'silent', storage: 'memory', ...config });
  await second.listen({ port, host: '127.0.0.1' });
  t.teardown(() => second.close());
  // gc needs auth: an answer (0 collected) means the client authenticated again before sending it.
  t.is(await during, 0, 'sent after the reconnect, authenticated again');
  t.deepEqual(reconnecting.slice(0, 2), [1, 2], 'attempts are numbered');
  t.true(c.connected);
  t.is(second.connections.size, 1);

  // A cut connection (no session held) heals the same way.
  cutConnections(second);
  t.is(await c.ping(), 'pong');
  const sid = await c.create();
  t.regex(sid, /^[0-9a-f]{32}$/);
  t.is(c.sessionId, sid);
  t.is(await c.get('nothing'), undefined, 'the new session is open on the new connection');
});

test('a client holding a session reports the loss: pending and later session commands fail until it opens again', async (t) => {
  const { port, server, connect } = await startServer(t);
  const c = await client(t, port, { reconnect: { minDelay: 10, maxDelay: 50 } });
  const sid = await c.create();
  await c.put('a', '1');
  await c.commit();
  await c.open(sid, 'rw');
  const losses: SessionLostError[] = [];
  c.on('sessionLost', (error: SessionLostError) => losses.push(error));
  const pending = c.put('a', '2');
  cutConnections(server);
  const error = await t.throwsAsync(pending, { instanceOf: SessionLostError });
  t.is(error.sessionId, sid);
  t.is(losses.length, 1);
  t.is(c.sessionId, null);
  await t.throwsAsync(c.get('a'), { instanceOf: SessionLostError });
  await t.throwsAsync(c.put('a', '3'), { instanceOf: SessionLostError });
  t.is(await c.ping(), 'pong', 'session-less commands work on the new connection');

  // The server released the lock with the connection: another client gets rw at once.
  const other = await connect();
  t.is(await other.request(`open ${sid} rw`), 'ok');
  t.is(await other.request('get a'), 'ok 1');
  t.is(await other.request('close'), 'ok');

  await c.open(sid, 'r');
  t.is(c.sessionLoss, null);
  t.is(await c.get('a'), '1');
  await c.close();
});

test('close() after a loss clears it; quit ends the client for good', async (t) => {
  const { port, server } = await startServer(t);
  const c = await client(t, port, { reconnect: { minDelay: 10, maxDelay: 50 } });
  await c.create();
  cutConnections(server);
  await new Promise((resolve) => c.once('sessionLost', resolve));
  t.truthy(c.sessionLoss);
  await c.close();
  t.is(c.sessionLoss, null);
  t.is(await c.ping(), 'pong');
  const ended = new Promise((resolve) => c.once('end', resolve));
  await c.quit();
  await ended;
  t.true(c.closed);
  await t.throwsAsync(c.ping(), { instanceOf: SessionConnectionError, message: 'Client is closed' });
});
