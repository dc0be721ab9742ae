import { spawn } from 'node:child_process';
import { mkdir, writeFile } from 'node:fs/promises';
import { connect } from 'node:net';
import { join } from 'node:path';
import test from 'ava';
import { BIN, freePort, REPO_ROOT, startCli } from './support/cli-process.js';
import { LineClient } from './support/line-client.js';
import { startServer, tempDir } from './support/server.js';
import { stats, until } from './support/wait.js';

/** Sends `text`, then FIN (as `socket.end(bytes)` and `nc -N` do), and resolves with everything the server sent before closing. */
function sendAndHalfClose(port: number, text: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1');
    let received = '';
    socket.setEncoding('utf8');
    socket.on('data', (chunk: string) => (received += chunk));
    socket.on('error', reject);
    socket.on('close', () => resolve(received));
    socket.end(text);
  });
}

test('a client that half-closes after its lines gets every reply, and its writes are kept (30 rounds)', async (t) => {
  // The filesystem store makes open and close truly asynchronous: the FIN arrives while they run.
  const { port, connect: open } = await startServer(t, { storage: 'filesystem', savePath: await tempDir(t) });
  const reader = await open();
  for (let round = 0; round < 30; round++) {
    t.is(await sendAndHalfClose(port, `open half${round} rw\nput k v${round}\nclose\n`), 'ok\r\nok\r\nok\r\n', `round ${round}: every reply`);
    t.is(await reader.request(`open half${round} r`), 'ok');
    t.is(await reader.request('get k'), `ok v${round}`, `round ${round}: the write is kept`);
  }
});

test('after FIN the server runs every queued line, replies, writes the session, then closes', async (t) => {
  const { port, connect: open } = await startServer(t, { storage: 'filesystem', savePath: await tempDir(t) });
  // No `close`: the server writes the session itself once the replies are out. The last line
  // has no newline, so it is not a request and never runs.
  const lines = ['open unclosed rw', 'put a 1', 'put b 2', 'get a', 'keys'];
  const replies = await sendAndHalfClose(port, `${lines.join('\n')}\nput c 3`);
  t.is(replies, 'ok\r\nok\r\nok\r\nok 1\r\nok a|b\r\n');
  const reader = await open();
  t.is(await reader.request('open unclosed r'), 'ok', 'written before the server closed the connection');
  t.is(await reader.request('keys'), 'ok a|b');
  t.is(await reader.request('open unclosed rw'), 'ok', 'and its writer lock released');
});

test('a half-closed client that reads slowly still gets every reply of a long pipeline', async (t) => {
  const { port, server } = await startServer(t);
  // 20 MB of replies: more than the socket buffers of both ends hold.
  const value = 'v'.repeat(10_000);
  const requests = ['new', `put big ${value}`, ...Array.from({ length: 2000 }, () => 'get big'), 'close'];
  const socket = connect(port, '127.0.0.1');
  socket.pause();
  socket.end(`${requests.join('\n')}\n`);
  // Replies pile up unread until the server's writes block; only then does the client read.
  let received = '';
  socket.setEncoding('utf8');
  const closed = new Promise<void>((resolve) => socket.on('close', () => resolve()));
  socket.on('data', (chunk: string) => (received += chunk));
  await until(() => [...server.connections].some((connection) => connection.socket.writableLength > 0), 'the server to have replies it cannot send yet');
  socket.resume();
  await closed;
  const replies = received.split('\r\n').slice(0, -1);
  t.is(replies.length, requests.length);
  t.regex(replies[0]!, /^ok [0-9a-z]+$/);
  t.is(replies.filter((reply) => reply === `ok ${value}`).length, 2000);
  t.is(replies.at(-1), 'ok');
});

test('a client dribbling a line byte by byte (slowloris) is closed after the idle timeout; its session is written', async (t) => {
  const { port, connect: open } = await startServer(t, { idleTimeout: 1 });
  const slow = await LineClient.connect(port);
  t.teardown(() => slow.close());
  t.is(await slow.request('open dribbled rw'), 'ok');
  t.is(await slow.request('put kept yes'), 'ok');
  let sent = 0;
  // Far more than the idle timeout's worth of bytes, each long before the timeout: only a
  // complete line counts as activity.
  const dribble = setInterval(() => {
    if (sent++ < 100 && !slow.closed) slow.socket.write('g');
  }, 100);
  t.teardown(() => clearInterval(dribble));
  t.is(await slow.read(15_000), 'err Idle timeout');
  t.true(await slow.closedByServer());
  t.true(sent < 100, 'closed while still dribbling');
  const reader = await open();
  t.is(await reader.request('open dribbled r'), 'ok');
  t.is(await reader.request('get kept'), 'ok yes');
});

test('a client sending complete lines is not idle, however slowly they come', async (t) => {
  const { connect: open, server } = await startServer(t, { idleTimeout: 2 });
  const steady = await open();
  await steady.request('open steady rw');
  // Each line counts; together they span more than the idle timeout.
  for (let i = 0; i < 30; i++) {
    t.is(await steady.request(`put n ${i}`), 'ok');
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  t.is(await steady.request('get n'), 'ok 29');
  t.is(server.connections.size, 1);
});

/** The built CLI under `ulimit -n <openFiles>`; resolves once it accepts connections. */
async function startCliWithFileLimit(t: Parameters<typeof startCli>[0], openFiles: number, args: string[]) {
  const port = await freePort();
  const child = spawn('bash', ['-c', `ulimit -n ${openFiles} && exec "$0" "$@"`, process.execPath, BIN, 'serve', '--port', String(port), ...args], {
    cwd: REPO_ROOT,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout!.on('data', (chunk) => (output += chunk));
  child.stderr!.on('data', (chunk) => (output += chunk));
  t.teardown(() => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  });
  await until(() => output.includes('sessionserver listening') || child.exitCode !== null, 'the server to listen');
  if (child.exitCode !== null) throw new Error(`sessionserver exited early:\n${output}`);
  return { child, port, output: () => output };
}

test('maxConnections above the open-file limit: a warning, a lower limit, and err Too many connections instead of EMFILE', async (t) => {
  const { child, port, output } = await startCliWithFileLimit(t, 200, ['--storage', 'memory', '--max-connections', '10000']);
  const warning = output().split('\n').filter((line) => line.startsWith('{')).map((line) => JSON.parse(line)).find((line) => line.effectiveMaxConnections !== undefined);
  t.like(warning, { level: 40, maxConnections: 10000, openFileLimit: 200, effectiveMaxConnections: 136 });
  const clients: LineClient[] = [];
  t.teardown(() => clients.forEach((client) => client.close()));
  const first = await LineClient.connect(port);
  clients.push(first);
  t.is(await first.request('open kept rw'), 'ok');
  t.is(await first.request('put v 1'), 'ok');
  // More clients than the descriptors allow: every one is answered, none is dropped silently.
  const replies = new Map<string, number>();
  for (let i = 1; i < 220; i++) {
    const client = await LineClient.connect(port);
    clients.push(client);
    const reply = await client.request('ping');
    replies.set(String(reply), (replies.get(String(reply)) ?? 0) + 1);
    if (reply !== 'ok pong') client.close();
  }
  t.deepEqual(Object.fromEntries(replies), { 'ok pong': 135, 'err Too many connections': 84 });
  t.is(await first.request('close'), 'ok', 'the open session is written');
  t.is(await first.request('open kept r'), 'ok');
  t.is(await first.request('get v'), 'ok 1');
  t.is((await stats(first)).connections, '136');
  t.is(child.exitCode, null, 'still running');
  t.false(output().includes('EMFILE'), 'accept never ran out of descriptors');
});

test('SIGHUP reloads command files and plugins; clients, sessions and the process carry on', async (t) => {
  const dir = await tempDir(t);
  const commands = join(dir, 'commands');
  const pluginFile = join(dir, 'version.mjs');
  await mkdir(commands);
  const command = (word: string) => `export default (ctx: unknown, name: string): string => \`${word} \${name}\`;\n`;
  const plugin = (version: string) => `export default { name: 'version', apply(server, options, ctx) { ctx.addCommand({ name: 'version', access: 'read', run: () => '${version}' }); } };\n`;
  await writeFile(join(commands, 'greet.ts'), command('hello'));
  await writeFile(pluginFile, plugin('one'));
  const server = await startCli(t, ['--storage', 'memory', '--commands-dir', commands, '--plugin', pluginFile]);
  const client = await LineClient.connect(server.port);
  t.teardown(() => client.close());
  t.is(await client.request('greet bob'), 'ok hello bob');
  t.is(await client.request('version'), 'ok one');
  t.is(await client.request('open held rw'), 'ok');
  t.is(await client.request('put pending yes'), 'ok');

  await writeFile(join(commands, 'greet.ts'), command('bonjour'));
  await writeFile(join(commands, 'bye.ts'), command('goodbye'));
  await writeFile(pluginFile, plugin('two'));
  const reloads = () => server.output().split('\n').filter((line) => line.includes('reloaded command files and plugins')).length;
  server.child.kill('SIGHUP');
  await until(() => reloads() === 1, 'the reload to be logged');
  t.is(await client.request('greet bob'), 'ok bonjour bob');
  t.is(await client.request('bye bob'), 'ok goodbye bob', 'a new file is loaded');
  t.is(await client.request('version'), 'ok two');
  t.is(await client.request('get pending'), 'ok yes', 'the connection and its session are untouched');

  // A broken file keeps its previous version, and the process keeps running.
  await writeFile(join(commands, 'greet.ts'), 'export default (ctx: unknown, name: string): string => `broken ${name\n');
  server.child.kill('SIGHUP');
  await until(() => server.output().includes('reload finished with failures'), 'the failed reload to be logged');
  t.is(await client.request('greet bob'), 'ok bonjour bob');
  t.is(await client.request('close'), 'ok');
  t.is(server.child.exitCode, null);
  t.is(server.child.signalCode, null);
});
