import { execFile, spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import test from 'ava';
import { decodeSessionValues, encodeSessionValues, SessionClient } from '../lib/index.js';
import { startServer } from './support/server.js';
import { track, writersQueued } from './support/wait.js';

// PHP's own $_SESSION on sessionserver through clients/php (Debian's php-cli), read and
// written by the Node client on the same sessions. CI installs php-cli, so there it never skips.

const DRIVER = fileURLToPath(new URL('../clients/php/tests/session.php', import.meta.url));
const hasPhp = spawnSync('php', ['-v']).status === 0;
const phpTest = hasPhp || process.env.CI ? test : test.skip;

interface PhpRun {
  code: number;
  json: any;
  stderr: string;
}

function php(port: number, action: string, sid = '', argument = '', env: NodeJS.ProcessEnv = {}): Promise<PhpRun> {
  return new Promise((resolve) => {
    execFile('php', [DRIVER, String(port), action, sid, argument], { env: { ...process.env, ...env }, timeout: 20_000 }, (error, stdout, stderr) => {
      const line = stdout.trim().split('\n').pop() ?? '';
      resolve({ code: error ? Number(error.code ?? 1) : 0, json: line ? JSON.parse(line) : null, stderr });
    });
  });
}

async function connect(t: Parameters<typeof startServer>[0], port: number): Promise<SessionClient> {
  const client = await SessionClient.connect({ port });
  t.teardown(() => client.disconnect());
  return client;
}

phpTest('PHP writes $_SESSION and the Node client reads the same values', async (t) => {
  const { port } = await startServer(t);
  const written = await php(port, 'write', 'php-wrote-this-1');
  t.is(written.code, 0, written.stderr);
  const client = await connect(t, port);
  await client.open('php-wrote-this-1', 'r');
  // Strings are plain keys: any client reads them as they are.
  t.is(await client.get('user'), 'alice');
  t.is(await client.get('visits'), '3');
  // A value with a line break cannot travel on one `get` line: get_all carries it as JSON.
  await t.throwsAsync(client.get('note'), { message: 'Value cannot be sent on one line' });
  const values = decodeSessionValues(await client.getAll());
  t.like(values, { user: 'alice', visits: 3, price: 9.5, admin: false, cart: { sku: 'A1', qty: 2 }, tags: ['a', 'b'], note: 'two\nlines' });
  t.deepEqual(values.bytes, Buffer.from([0xff, 0xfe]));
  t.is(typeof values.object, 'string', 'a PHP object is opaque to Node');
});

phpTest('the Node client writes and PHP reads the same values, with their types', async (t) => {
  const { port } = await startServer(t);
  const client = await connect(t, port);
  await client.open('node-wrote-this-1', 'rw');
  await client.putAll(encodeSessionValues({ user: 'bob', visits: 4, ratio: 0.25, roles: ['editor', 'ops'], profile: { city: 'Zürich' }, note: 'a\nb' }));
  await client.put('plain', 'set with put');
  await client.close();
  const read = await php(port, 'read', 'node-wrote-this-1');
  t.is(read.code, 0, read.stderr);
  t.deepEqual(read.json.session, {
    user: { type: 'string', value: 'bob' },
    visits: { type: 'int', value: 4 },
    ratio: { type: 'float', value: 0.25 },
    roles: { type: 'array', value: ['editor', 'ops'] },
    profile: { type: 'array', value: { city: 'Zürich' } },
    note: { type: 'string', value: 'a\nb' },
    plain: { type: 'string', value: 'set with put' },
  });
});

phpTest("PHP's own round trip keeps every type, objects and bytes included", async (t) => {
  const { port } = await startServer(t);
  t.is((await php(port, 'write', 'php-both-ways')).code, 0);
  const read = await php(port, 'read', 'php-both-ways');
  t.deepEqual(read.json.session, {
    user: { type: 'string', value: 'alice' },
    visits: { type: 'int', value: 3 },
    price: { type: 'float', value: 9.5 },
    admin: { type: 'bool', value: false },
    cart: { type: 'array', value: { sku: 'A1', qty: 2 } },
    tags: { type: 'array', value: ['a', 'b'] },
    note: { type: 'string', value: 'two\nlines' },
    bytes: { type: 'bytes', value: 'fffe' },
    object: { type: 'ArrayObject', value: { x: 1 } },
  });
});

phpTest("PHP's locking: a request holds its session from session_start to write, others wait", async (t) => {
  const { port, server } = await startServer(t);
  const locks = server.sessions.locks;
  const first = await connect(t, port);
  const last = await connect(t, port);
  // Node holds the session rw; PHP's session_start queues behind it, and a second Node writer
  // queues behind PHP. Both are seen queued before anyone lets go: the order is made, not timed.
  await first.open('locked-session-1', 'rw');
  await first.put('owner', 'node');
  const phpRun = track(php(port, 'hold', 'locked-session-1', '0'));
  await writersQueued(locks, 1);
  const lastOpen = track(last.open('locked-session-1', 'rw'));
  await writersQueued(locks, 2);
  t.false(phpRun.settled, 'PHP waits while Node holds the session');
  t.false(lastOpen.settled);
  await first.close();
  // PHP got it next, wrote its value over what it read (Node's), and only then let go.
  t.is((await phpRun.promise).code, 0);
  await lastOpen.promise;
  t.is(await last.get('held'), 'by php', "the second Node writer got in after PHP's write");
  t.is(await last.get('owner'), 'node', "PHP read Node's write: it got in after Node's close");
  await last.close();
  t.is(locks.timeouts, 0);
});

phpTest('parallel PHP requests on one session lose no update', async (t) => {
  const { port } = await startServer(t);
  const runs = await Promise.all(Array.from({ length: 6 }, () => php(port, 'increment', 'counted-by-php')));
  t.true(runs.every((run) => run.code === 0), runs.map((run) => run.stderr).join(''));
  const client = await connect(t, port);
  await client.open('counted-by-php', 'r');
  t.deepEqual(decodeSessionValues(await client.getAll()), { n: 6 });
});

phpTest('strict mode, session_regenerate_id, session_destroy and the lifetime option', async (t) => {
  const { port } = await startServer(t);
  const client = await connect(t, port);
  const fresh = await php(port, 'strict', 'nobody-knows-this-id');
  t.not(fresh.json.id, 'nobody-knows-this-id', 'use_strict_mode refuses an unknown id');
  await php(port, 'write', 'known-session-1', '', { SESSION_LIFETIME: '120' });
  await client.open('known-session-1', 'r');
  t.is(await client.ttl(), 120, 'the handler gives sessions its lifetime');
  await client.close();
  t.is((await php(port, 'strict', 'known-session-1')).json.id, 'known-session-1');

  const regenerated = await php(port, 'regenerate', 'known-session-1');
  const newId: string = regenerated.json.id;
  t.not(newId, 'known-session-1');
  await t.throwsAsync(client.open('known-session-1', 'r'), { message: 'Could not open session.' });
  await client.open(newId, 'r');
  t.is(await client.get('user'), 'alice');
  await client.close();

  t.is((await php(port, 'destroy', newId)).code, 0);
  await t.throwsAsync(client.open(newId, 'r'), { message: 'Could not open session.' });
});

phpTest('a server that cannot be reached makes session_start fail with a warning naming it', async (t) => {
  const { server } = await startServer(t);
  const port = server.address()!.port;
  await server.close();
  const run = await php(port, 'read', 'any-session');
  t.is(run.code, 1);
  t.regex(run.stderr + JSON.stringify(run.json), /session_start failed/);
});
