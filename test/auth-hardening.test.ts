import { writeFile } from 'node:fs/promises';
import { connect as netConnect } from 'node:net';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import test from 'ava';
import { hashPassword } from '../lib/index.js';
import type { LineClient } from './support/line-client.js';
import { startServer, tempDir } from './support/server.js';
import { until } from './support/wait.js';
import { countScryptJobs } from './support/scrypt-jobs.js';

// The auth plugin against an attacker: principals per token, expiry as a write, failures per
// address across connections, the same delay for right and wrong answers, bounded password
// checks, and logins that survive a plugin reload. Real servers, real sockets.

const AUTH_PLUGIN = fileURLToPath(new URL('../plugins/auth.ts', import.meta.url));
const ADMIN = 'admin-token-5b2c9e';
const READER = 'reader-token-7d41aa';
const PASSWORD = 'correct horse battery staple';

const FAILED = 'err Authentication failed';
const THROTTLED = 'err Too many failed attempts, retry later';
const BUSY = 'err Too many authentication attempts in progress, retry later';
const READ_ONLY = 'err Read-only user';
const REQUIRED = 'err Authentication required';

/** Command files: `whoami` (declares read) tells ctx.user, `scribble` declares nothing. */
async function commandFiles(t: Parameters<typeof tempDir>[0]): Promise<string> {
  const dir = await tempDir(t);
  await writeFile(join(dir, 'whoami.mjs'), "export default { name: 'whoami', access: 'read', run: (ctx) => ctx.user ?? '-' };\n");
  await writeFile(join(dir, 'scribble.mjs'), "export default { name: 'scribble', run: () => 'scribbled' };\n");
  return dir;
}

/** A reply delay the test releases by hand: what the plugin waited for, and for how long. */
function heldWaits() {
  const calls: number[] = [];
  const pending: Array<() => void> = [];
  return {
    calls,
    pending,
    wait: (ms: number) => {
      calls.push(ms);
      return new Promise<void>((resolve) => pending.push(resolve));
    },
    release() {
      pending.shift()!();
    },
  };
}

/** One request from a connection bound to `localAddress` (127.0.0.2 is another client address on loopback). */
function requestFrom(localAddress: string, port: number, line: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = netConnect({ port, host: '127.0.0.1', localAddress }, () => socket.write(`${line}\n`));
    let text = '';
    socket.setEncoding('utf8');
    socket.on('data', (chunk: string) => {
      text += chunk;
      const end = text.indexOf('\r\n');
      if (end !== -1) {
        socket.destroy();
        resolve(text.slice(0, end));
      }
    });
    socket.on('error', reject);
  });
}

test('every token is its own principal, in any order of the list', async (t) => {
  const commandsDir = await commandFiles(t);
  for (const tokens of [
    [{ token: READER, readOnly: true }, { token: ADMIN }],
    [{ token: ADMIN }, { token: READER, readOnly: true }],
  ]) {
    const { connect } = await startServer(t, { commandsDir, plugins: [['auth', { tokens }]] });
    const admin = await connect();
    const reader = await connect();
    t.is(await admin.request(`auth ${ADMIN}`), 'ok');
    t.is(await reader.request(`auth ${READER}`), 'ok');
    t.regex((await admin.request('new'))!, /^ok [0-9a-f]{32}$/, 'the admin token writes, wherever it is listed');
    t.is(await reader.request('new'), READ_ONLY, 'the read-only token stays read-only, wherever it is listed');
    const position = (token: string) => tokens.findIndex((entry) => entry.token === token) + 1;
    t.is(await admin.request('whoami'), `ok token#${position(ADMIN)}`, 'a token without a user is named by its place in the list');
    t.is(await reader.request('whoami'), `ok token#${position(READER)}`);
  }
});

test('tokens of one user name are still separate principals; a token listed twice is refused', async (t) => {
  const commandsDir = await commandFiles(t);
  const tokens = [{ token: READER, user: 'app', readOnly: true }, { token: ADMIN, user: 'app' }];
  const { connect } = await startServer(t, { commandsDir, plugins: [['auth', { tokens }]] });
  const [reader, admin] = [await connect(), await connect()];
  t.is(await reader.request(`auth ${READER}`), 'ok');
  t.is(await admin.request(`auth ${ADMIN}`), 'ok');
  t.deepEqual([await reader.request('whoami'), await admin.request('whoami')], ['ok app', 'ok app']);
  t.is(await reader.request('new'), READ_ONLY);
  t.regex((await admin.request('new'))!, /^ok /);

  const { SessionServer } = await import('../lib/index.js');
  const twice = new SessionServer({ storage: 'memory', logLevel: 'silent', plugins: [['auth', { tokens: [ADMIN, { token: ADMIN, readOnly: true }] }]] });
  await t.throwsAsync(twice.listen({ port: 0 }), { message: /token #2 is listed twice/ });
  await twice.close();
});

test('expiry is a write: ttl <seconds>, ttl default and touch are refused for read-only principals; ttl alone reads', async (t) => {
  const { connect } = await startServer(t, { plugins: [['auth', { tokens: [ADMIN, { token: READER, readOnly: true }] }]] });
  const admin = await connect();
  await admin.request(`auth ${ADMIN}`);
  t.is(await admin.request('open shared rw'), 'ok');
  t.is(await admin.request('put v 1'), 'ok');
  t.is(await admin.request('close'), 'ok');
  const reader = await connect();
  t.is(await reader.request(`auth ${READER}`), 'ok');
  t.is(await reader.request('open shared r'), 'ok');
  t.regex((await reader.request('ttl'))!, /^ok \d+$/, 'reading the lifetime is a read');
  t.is(await reader.request('ttl 60'), READ_ONLY);
  t.is(await reader.request('ttl 999999'), READ_ONLY);
  t.is(await reader.request('ttl default'), READ_ONLY);
  t.is(await reader.request('touch'), READ_ONLY);
  t.is(await reader.request('get v'), 'ok 1');
  // The writer's own rights are untouched.
  t.is(await admin.request('open shared rw'), 'ok');
  t.is(await admin.request('ttl 60'), 'ok');
  t.is(await admin.request('touch'), 'ok');
});

test('read or write comes from each command spec: files and plugins without `access` are writes', async (t) => {
  const commandsDir = await commandFiles(t);
  const marker = {
    name: 'marker',
    apply(_server: unknown, _options: unknown, ctx: { addCommand(definition: object): void }) {
      ctx.addCommand({ name: 'stamp', run: () => 'stamped' });
      ctx.addCommand({ name: 'peek', access: 'read', run: () => 'peeked' });
      ctx.addCommand({ name: 'maybe', access: (arg1: string) => (arg1 === 'look' ? 'read' : 'write'), run: () => 'done' });
    },
  };
  const { connect } = await startServer(t, { commandsDir, plugins: [['auth', { tokens: [ADMIN, { token: READER, readOnly: true }] }], marker] });
  const reader = await connect();
  t.is(await reader.request(`auth ${READER}`), 'ok');
  t.is(await reader.request('scribble'), READ_ONLY, 'a command file without access counts as a write');
  t.is(await reader.request('whoami'), 'ok token#2', 'a command file declaring read is allowed');
  t.is(await reader.request('stamp'), READ_ONLY, 'a plugin command without access counts as a write');
  t.is(await reader.request('peek'), 'ok peeked');
  t.is(await reader.request('maybe look'), 'ok done', 'access decided per request');
  t.is(await reader.request('maybe change'), READ_ONLY);
  const admin = await connect();
  t.is(await admin.request(`auth ${ADMIN}`), 'ok');
  t.deepEqual(await admin.pipeline(['scribble', 'stamp', 'maybe change']), ['ok scribbled', 'ok stamped', 'ok done']);
});

test('failures count per client address across connections: a new connection per guess starts nothing afresh', async (t) => {
  const { connect, port } = await startServer(t, { plugins: [['auth', { tokens: [ADMIN], failureDelayMs: 0, maxFailures: 3 }]] });
  const guesses: Array<string | null> = [];
  for (let i = 0; i < 3; i++) {
    const c = await connect();
    guesses.push(await c.request(`auth guess-${i}`));
  }
  t.deepEqual(guesses, [FAILED, FAILED, THROTTLED], 'the third failure from this address, on its third connection, is refused');
  const late = await connect();
  t.is(await late.request(`auth ${ADMIN}`), THROTTLED, 'while refused, even the right token is not checked');
  t.true(await late.closedByServer());
  t.is(await requestFrom('127.0.0.2', port, `auth ${ADMIN}`), 'ok', 'another client address is not affected');
});

test('a right and a wrong credential wait on the same delay once the address has failed; the failure counts before the wait', async (t) => {
  const held = heldWaits();
  const alice = await hashPassword(PASSWORD);
  const { connect } = await startServer(t, {
    plugins: [['auth', { tokens: [ADMIN], users: { alice: { password: alice } }, failureDelayMs: 100, maxFailures: 10, wait: held.wait }]],
  });
  // A client that never failed logs in at once: no delay at all.
  const clean = await connect();
  t.is(await clean.request(`auth ${ADMIN}`), 'ok');
  t.deepEqual(held.calls, []);

  /** Sends `line`, sees the reply held on the plugin's wait, releases it, and returns the reply. */
  const heldReply = async (c: LineClient, line: string) => {
    const waiting = held.pending.length;
    c.send(line);
    await until(() => held.pending.length === waiting + 1, `${line}: its reply waits`);
    t.is(c.unread, 0, `${line}: no reply before the wait ends`);
    held.release();
    return c.read();
  };
  t.is(await heldReply(await connect(), 'auth wrong-1'), FAILED);
  t.is(await heldReply(await connect(), `auth ${ADMIN}`), 'ok', 'after a failure, a success waits too');
  t.is(await heldReply(await connect(), 'auth wrong-2'), FAILED);
  t.is(await heldReply(await connect(), `auth alice ${PASSWORD}`), 'ok');
  t.is(await heldReply(await connect(), 'auth alice wrong'), FAILED);
  t.deepEqual(held.calls, [100, 200, 200, 400, 400], 'with one failure on record both verdicts wait 200 ms, with two both wait 400 ms');

  // Hanging up while the reply waits does not undo the failure.
  const quitter = await connect();
  quitter.send('auth wrong-3');
  await until(() => held.pending.length === 1, 'the reply waits');
  quitter.close();
  held.release();
  t.is(await heldReply(await connect(), `auth ${ADMIN}`), 'ok');
  t.deepEqual(held.calls.slice(5), [800, 1600], 'the abandoned attempt counted: four failures on record now');
});

// Serial: these count replies against scrypt work on this process's thread pool; no other test may hash meanwhile.
test.serial('password checks beyond the running and queued bound are refused at once; the queue drains', async (t) => {
  const alice = await hashPassword(PASSWORD);
  const { connect } = await startServer(t, {
    plugins: [['auth', { users: { alice: { password: alice } }, failureDelayMs: 0, maxFailures: 100, maxConcurrentVerifications: 1, maxQueuedVerifications: 2 }]],
  });
  const clients = await Promise.all(Array.from({ length: 5 }, () => connect()));
  // All five are sent at once: one runs, two queue, two find no room.
  for (const [i, c] of clients.entries()) c.send(`auth alice wrong-${i}`);
  const replies = await Promise.all(clients.map((c) => c.read()));
  t.deepEqual(replies.filter((reply) => reply === FAILED).length, 3, replies.join(' | '));
  t.deepEqual(replies.filter((reply) => reply === BUSY).length, 2, replies.join(' | '));
  t.is(await clients[0]!.request(`auth alice ${PASSWORD}`), 'ok', 'once the queue drained, checks run again');
});

test.serial('a burst of wrong passwords does not hold up other clients’ file-system requests', async (t) => {
  const alice = await hashPassword(PASSWORD);
  const savePath = await tempDir(t);
  const { connect } = await startServer(t, {
    storage: 'filesystem',
    savePath,
    plugins: [['auth', { tokens: [ADMIN], users: { alice: { password: alice } }, failureDelayMs: 0, maxFailures: 100 }]],
  });
  const worker = await connect();
  t.is(await worker.request(`auth ${ADMIN}`), 'ok');
  t.is(await worker.request('open on-disk rw'), 'ok');
  t.is(await worker.request('put v 1'), 'ok');
  t.is(await worker.request('close'), 'ok');

  const attackers = await Promise.all(Array.from({ length: 12 }, () => connect()));
  let answered = 0;
  const verdicts = attackers.map((c, i) => c.request(`auth alice wrong-${i}`).then((reply) => (answered++, reply)));
  // Sent after all twelve: without a bound their scrypt jobs fill libuv's pool ahead of this read.
  const opened = worker.request('open on-disk r').then((reply) => ({ reply, answeredBefore: answered }));
  const { reply, answeredBefore } = await opened;
  t.is(reply, 'ok');
  t.is(await worker.request('get v'), 'ok 1');
  t.true(answeredBefore <= 4, `the file-system read was answered while ${12 - answeredBefore} of 12 password checks were still pending`);
  t.deepEqual(new Set(await Promise.all(verdicts)), new Set([FAILED]));
});

test.serial('names of Object.prototype are unknown users: a decoy scrypt each, never a login', async (t) => {
  const alice = await hashPassword(PASSWORD);
  const { connect } = await startServer(t, { plugins: [['auth', { users: { alice: { password: alice } }, failureDelayMs: 0, maxFailures: 100 }]] });
  const c = await connect();
  const scrypt = countScryptJobs(t);
  for (const name of ['__proto__', 'constructor', 'toString', 'hasOwnProperty']) {
    const before = scrypt.count;
    t.is(await c.request(`auth ${name} anything`), FAILED, name);
    t.is(scrypt.count - before, 1, `${name}: one scrypt, like any unknown user`);
  }
  t.is(await c.request('new'), REQUIRED);
});

test('reloading the auth plugin keeps its logins', async (t) => {
  const alice = await hashPassword(PASSWORD);
  const { connect, server } = await startServer(t, { plugins: [['auth', { tokens: [ADMIN], users: { alice: { password: alice } } }]] });
  const [byToken, byPassword, anonymous] = [await connect(), await connect(), await connect()];
  t.is(await byToken.request(`auth ${ADMIN}`), 'ok');
  t.is(await byPassword.request(`auth alice ${PASSWORD}`), 'ok');
  t.is(await server.plugins.reload(AUTH_PLUGIN), undefined);
  t.regex((await byToken.request('new'))!, /^ok [0-9a-f]{32}$/);
  t.regex((await byPassword.request('new'))!, /^ok [0-9a-f]{32}$/);
  t.is(await anonymous.request('new'), REQUIRED, 'still nobody without auth');
});

test('a reloaded configuration re-checks every login: new grants apply, vanished tokens and users are logged out', async (t) => {
  const dir = await tempDir(t);
  const file = join(dir, 'site-auth.mjs');
  const [alice, newAlice, bob] = await Promise.all([hashPassword(PASSWORD), hashPassword('a new password'), hashPassword('bob pass')]);
  // A site plugin file with the configuration inside: saving it reloads auth with new options.
  const writeConfig = (options: object) =>
    writeFile(file, `import auth from ${JSON.stringify(AUTH_PLUGIN)};\nconst options = ${JSON.stringify(options)};\nexport default { name: 'auth', apply: (server, _options, ctx) => auth.apply(server, options, ctx) };\n`);
  await writeConfig({ tokens: [ADMIN, READER], users: { alice: { password: alice }, bob: { password: bob } } });
  const commandsDir = await commandFiles(t);
  const { connect, server } = await startServer(t, { commandsDir, plugins: [file] });
  const [admin, reader, aliceConnection, bobConnection] = [await connect(), await connect(), await connect(), await connect()];
  t.is(await admin.request(`auth ${ADMIN}`), 'ok');
  t.is(await reader.request(`auth ${READER}`), 'ok');
  t.is(await aliceConnection.request(`auth alice ${PASSWORD}`), 'ok');
  t.is(await bobConnection.request('auth bob bob pass'), 'ok');
  t.is(await reader.request('whoami'), 'ok token#2');

  // The reader token moves to the front and becomes read-only; the admin token is gone; alice's password changed.
  await writeConfig({ tokens: [{ token: READER, readOnly: true }], users: { alice: { password: newAlice }, bob: { password: bob, commands: ['whoami'] } } });
  t.is(await server.plugins.reload(file), undefined);
  t.is(await reader.request('whoami'), 'ok token#1', 'the token stays logged in, under its new name');
  t.is(await reader.request('new'), READ_ONLY, 'with its new grants');
  t.is(await admin.request('new'), REQUIRED, 'a removed token is logged out');
  t.is(await admin.request('whoami'), REQUIRED);
  t.is(await aliceConnection.request('new'), REQUIRED, 'a changed password logs its user out');
  t.is(await aliceConnection.request('auth alice a new password'), 'ok');
  t.is(await bobConnection.request('whoami'), 'ok bob');
  t.is(await bobConnection.request('new'), 'err Command not allowed', 'bob stays, with his new allow-list');
});
