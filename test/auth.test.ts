import { spawn } from 'node:child_process';
import { setTimeout as sleep } from 'node:timers/promises';
import test from 'ava';
import { hashPassword, verifyPassword } from '../lib/index.js';
import { BIN } from './support/cli-process.js';
import { captureLogger } from './support/log-capture.js';
import { startServer } from './support/server.js';
import { countScryptJobs } from './support/scrypt-jobs.js';

const TOKEN = 'tok-3f9a8b7c6d5e4f3a2b1c';
const PASSWORD = 'correct horse battery staple';

async function startWithAuth(t: Parameters<typeof startServer>[0], extra: Record<string, unknown> = {}) {
  const [alice, reader] = await Promise.all([hashPassword(PASSWORD), hashPassword('reader pass')]);
  const { logger, text } = captureLogger();
  const running = await startServer(t, {
    logger,
    plugins: [
      ['auth', {
        tokens: [TOKEN, { token: 'limited-token-0000', user: 'limited', commands: ['open', 'get', 'close'] }],
        users: { alice: { password: alice }, reader: { password: reader, readOnly: true } },
        failureDelayMs: 20,
        maxFailures: 3,
        ...extra,
      }],
    ],
  });
  return { ...running, logText: text };
}

test('before auth only auth, hello, ping, quit and help work', async (t) => {
  const { connect } = await startWithAuth(t);
  const c = await connect();
  for (const line of ['new', 'open s rw', 'open s r', 'get x', 'stats', 'gc', 'keys', 'frobnicate_nothing']) {
    const reply = await c.request(line);
    t.true(reply === 'err Authentication required' || (line.startsWith('frobnicate') && reply === 'err unknown command'), `${line}: ${reply}`);
  }
  t.is(await c.request('new'), 'err Authentication required');
  t.is(await c.request('ping'), 'ok pong');
  t.regex((await c.request('hello'))!, /^ok sessionserver/);
  t.regex((await c.request('help'))!, /auth <token> \| auth <user> <password>/);
});

test('a valid token or user/password unlocks the connection; wrong ones never do', async (t) => {
  // Failures count per client address, and every connection here comes from 127.0.0.1.
  const { connect } = await startWithAuth(t, { maxFailures: 10 });
  const c = await connect();
  t.is(await c.request('auth wrong-token'), 'err Authentication failed');
  t.is(await c.request(`auth ${TOKEN}x`), 'err Authentication failed', 'a longer token');
  t.is(await c.request('new'), 'err Authentication required');
  t.is(await c.request(`auth ${TOKEN}`), 'ok');
  t.regex((await c.request('new'))!, /^ok [0-9a-f]{32}$/);

  const d = await connect();
  t.is(await d.request('auth alice wrong password'), 'err Authentication failed');
  t.is(await d.request('auth mallory whatever'), 'err Authentication failed');
  t.is(await d.request(`auth alice ${PASSWORD}`), 'ok', 'passwords may contain spaces');
  const e = await connect();
  t.is(await e.request('auth alice'), 'err Authentication failed', 'a user name alone is not a token');
  t.is(await e.request('open s r'), 'err Authentication required');
  t.is(await d.request('open s rw'), 'ok');
  t.regex((await d.request('whoami'))!, /^err unknown command$/, 'no such command here; auth passed through the dispatcher normally');
});

test('a read-only user may only open r and read', async (t) => {
  const { connect } = await startWithAuth(t);
  const writer = await connect();
  await writer.request(`auth ${TOKEN}`);
  await writer.request('open shared rw');
  await writer.request('put v 1');
  await writer.request('close');
  const c = await connect();
  t.is(await c.request('auth reader reader pass'), 'ok');
  t.is(await c.request('new'), 'err Read-only user');
  t.is(await c.request('open shared rw'), 'err Read-only user');
  t.is(await c.request('open shared w'), 'err Read-only user');
  t.is(await c.request('open shared'), 'err Read-only user', 'the default mode is rw');
  t.is(await c.request('gc 0'), 'err Read-only user');
  t.is(await c.request('open shared r'), 'ok');
  t.is(await c.request('get v'), 'ok 1');
  t.is(await c.request('put v 2'), 'err Read-only user');
  t.is(await c.request('put_all {"v":"3"}'), 'err Read-only user');
  t.is(await c.request('keys'), 'ok v');
});

test('a per-principal allow-list limits the commands', async (t) => {
  const { connect } = await startWithAuth(t);
  const c = await connect();
  t.is(await c.request('auth limited-token-0000'), 'ok');
  t.is(await c.request('new'), 'err Command not allowed');
  t.is(await c.request('stats'), 'err Command not allowed');
  t.is(await c.request('open x rw'), 'ok');
  t.is(await c.request('get nothing'), 'err Key does not exist');
  t.is(await c.request('ping'), 'ok pong');
});

test('repeated failures slow down, then close the connection', async (t) => {
  // The plugin's `wait` seam: it still really waits, and the test sees for how long it asked.
  const delays: number[] = [];
  const { connect } = await startWithAuth(t, { wait: (ms: number) => (delays.push(ms), sleep(ms)) });
  const c = await connect();
  t.is(await c.request('auth nope'), 'err Authentication failed');
  t.is(await c.request('auth nope'), 'err Authentication failed');
  t.is(await c.request('auth nope'), 'err Too many failed attempts, retry later');
  t.deepEqual(delays, [20, 40, 80], 'failureDelayMs (20), doubled for each failure before');
  t.true(await c.closedByServer());
});

// Serial: it counts the scrypt jobs of this whole process, so no other test may run meanwhile.
test.serial('an unknown user costs a full scrypt, like a known user with a wrong password', async (t) => {
  const { connect } = await startWithAuth(t, { failureDelayMs: 0, maxFailures: 100 });
  const c = await connect();
  const scrypt = countScryptJobs(t);
  const jobsFor = async (line: string) => {
    const before = scrypt.count;
    t.is(await c.request(line), 'err Authentication failed', line);
    return scrypt.count - before;
  };
  // The decoy hash an unknown user is checked against is made like every user's (hashPassword,
  // the default cost); so equal counts mean equal work.
  t.is(await jobsFor('auth alice wrong'), 1, 'a known user: one scrypt');
  t.is(await jobsFor('auth nobody wrong'), 1, 'an unknown user: one scrypt as well');
  t.is(await jobsFor('auth nobody-else wrong'), 1);
  t.is(await jobsFor('auth not-a-token'), 0, 'tokens are compared, not hashed');
});

test('secrets never reach the log', async (t) => {
  const { connect, logText } = await startWithAuth(t);
  const c = await connect();
  await c.request('auth not-the-token-but-secret-ish');
  await c.request(`auth alice ${PASSWORD}`);
  await c.request('auth alice wrong-password-in-log?');
  t.is(await c.request(`auth ${TOKEN}`), 'ok');
  const log = logText();
  t.regex(log, /authentication failed/);
  for (const secret of [TOKEN, PASSWORD, 'not-the-token-but-secret-ish', 'wrong-password-in-log?']) t.false(log.includes(secret), secret);
});

test('the plugin refuses a configuration without credentials or with plain-text passwords', async (t) => {
  const { SessionServer } = await import('../lib/index.js');
  const none = new SessionServer({ storage: 'memory', logLevel: 'silent', plugins: [['auth', {}]] });
  await t.throwsAsync(none.listen({ port: 0 }), { message: /at least one token or user/ });
  await none.close();
  const plain = new SessionServer({ storage: 'memory', logLevel: 'silent', plugins: [['auth', { users: { bob: { password: 'hunter2' } } }]] });
  await t.throwsAsync(plain.listen({ port: 0 }), { message: /password hash/ });
  await plain.close();
});

test('sessionserver hash-password reads stdin and prints a verifiable scrypt hash', async (t) => {
  const child = spawn(process.execPath, [BIN, 'hash-password'], { stdio: ['pipe', 'pipe', 'pipe'] });
  child.stdin.end('s3cret with spaces\n');
  let out = '';
  child.stdout.on('data', (chunk) => (out += chunk));
  const code = await new Promise((resolve) => child.on('exit', resolve));
  t.is(code, 0);
  const hash = out.trim();
  t.regex(hash, /^scrypt\$16384\$8\$1\$/);
  t.true(await verifyPassword('s3cret with spaces', hash));
  t.false(await verifyPassword('s3cret with spaces ', hash));
});
