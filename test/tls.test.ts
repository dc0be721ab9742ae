import { execFile, spawnSync } from 'node:child_process';
import { copyFile, readFile, writeFile } from 'node:fs/promises';
import { connect as netConnect } from 'node:net';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { ConnectionOptions } from 'node:tls';
import test, { type ExecutionContext } from 'ava';
import { SessionClient } from '../lib/client/index.js';
import { ConfigError } from '../lib/core/errors.js';
import { peerCertificateCommonName } from '../lib/core/listener.js';
import { definePlugin } from '../lib/core/plugin-host.js';
import { SessionServer, type SessionServerConfig } from '../lib/index.js';
import { TestCa } from './fixtures/test-ca.js';
import { startCli } from './support/cli-process.js';
import { LineClient } from './support/line-client.js';
import { startServer, tempDir } from './support/server.js';
import { until } from './support/wait.js';

interface TlsSetup {
  dir: string;
  ca: TestCa;
  caPem: Buffer;
  server: { cert: string; key: string };
}

async function tlsSetup(t: ExecutionContext): Promise<TlsSetup> {
  const dir = await tempDir(t, 'sessionserver-tls-');
  const ca = await TestCa.create(dir);
  return { dir, ca, caPem: await ca.pem(), server: await ca.serverCertificate() };
}

/** A plugin command answering the verified client certificate's CN: what an auth plugin would read. */
const whoami = definePlugin({
  name: 'whoami',
  apply(_server, _options, ctx) {
    ctx.addCommand({ name: 'whoami', usage: 'whoami', access: 'read', run: (connection) => peerCertificateCommonName(connection) ?? 'nobody' });
  },
});

test('over TLS the protocol works as over TCP, for the Node client too', async (t) => {
  const { caPem, server: files } = await tlsSetup(t);
  const { port } = await startServer(t, { tls: files });
  const lines = await LineClient.connectTls(port, { ca: caPem });
  t.regex((await lines.request('new')) ?? '', /^ok [0-9a-f]{32}$/);
  t.is(await lines.request('put colour blue'), 'ok');
  t.is(await lines.request('get colour'), 'ok blue');
  lines.socket.end();

  const client = await SessionClient.connect({ port, tls: { ca: caPem, servername: 'localhost' } });
  t.teardown(() => client.disconnect());
  await client.open('tls-session', 'rw');
  await client.put('answer', 42);
  t.is(await client.get('answer'), '42');
  await client.close();
});

test('a TLS client that half-closes after its last line still gets every reply', async (t) => {
  const { caPem, server: files } = await tlsSetup(t);
  const { port } = await startServer(t, { tls: files });
  const lines = await LineClient.connectTls(port, { ca: caPem });
  lines.socket.end('new\nput colour blue\nget colour\n');
  t.regex((await lines.read()) ?? '', /^ok [0-9a-f]{32}$/);
  t.is(await lines.read(), 'ok');
  t.is(await lines.read(), 'ok blue');
  t.is(await lines.read(), null);
});

test('a plaintext client on the TLS port runs no command and is disconnected; TLS clients are still served', async (t) => {
  const { caPem, server: files } = await tlsSetup(t);
  const { server, port } = await startServer(t, { tls: files });
  const plain = netConnect(port, '127.0.0.1');
  plain.on('error', () => {});
  let received = '';
  plain.on('data', (chunk: Buffer) => (received += chunk.toString('latin1')));
  plain.write('new\nput pwned 1\nclose\n');
  await new Promise((resolve) => plain.once('close', resolve));
  t.false(/^(ok|err)\b/m.test(received), 'no reply line came back');
  t.is(server.counters.commands, 0);
  t.is(server.counters.connectionsTotal, 0, 'the plaintext client never became a connection');
  t.is(await server.store.count(), 0);

  const lines = await LineClient.connectTls(port, { ca: caPem });
  t.is(await lines.request('ping'), 'ok pong');
});

test('mutual TLS: a client certificate signed by the CA is served and its CN readable; no or foreign certificates are refused', async (t) => {
  const { dir, ca, caPem, server: files } = await tlsSetup(t);
  const alice = await ca.clientCertificate('alice');
  const strangerCa = await TestCa.create(dir, 'stranger');
  const mallory = await strangerCa.clientCertificate('mallory');
  const { server, port } = await startServer(t, { tls: { ...files, ca: ca.cert }, plugins: [whoami] });

  const withoutCertificate = await LineClient.connectTls(port, { ca: caPem }).catch((error: Error) => error);
  if (withoutCertificate instanceof LineClient) {
    // TLS 1.3: the client's handshake ends before the server checks it; the refusal arrives next.
    withoutCertificate.socket.write('new\nput pwned 1\n');
    t.is(await withoutCertificate.read(), null);
    t.truthy(withoutCertificate.error, 'the server refused the handshake');
  } else {
    t.regex(withoutCertificate.message, /certificate/i);
  }
  const foreign = await LineClient.connectTls(port, { ca: caPem, cert: await readFile(mallory.cert), key: await readFile(mallory.key) }).catch((error: Error) => error);
  if (foreign instanceof LineClient) {
    foreign.socket.write('new\nput pwned 1\n');
    t.is(await foreign.read(), null, 'closed without a reply');
  } else {
    t.regex(foreign.message, /certificate|alert/i);
  }
  t.is(server.counters.commands, 0, 'no command of a refused client ran');
  t.is(server.counters.connectionsTotal, 0);

  const lines = await LineClient.connectTls(port, { ca: caPem, cert: await readFile(alice.cert), key: await readFile(alice.key) });
  t.is(await lines.request('whoami'), 'ok alice');
  t.is(await lines.request('open shared rw'), 'ok');
  t.is(await lines.request('put by alice'), 'ok');
  t.is(await lines.request('get by'), 'ok alice');
});

test('without mutual TLS no client certificate is asked for, so no CN is trusted', async (t) => {
  const { ca, caPem, server: files } = await tlsSetup(t);
  const alice = await ca.clientCertificate('alice');
  const { port } = await startServer(t, { tls: files, plugins: [whoami] });
  const lines = await LineClient.connectTls(port, { ca: caPem, cert: await readFile(alice.cert), key: await readFile(alice.key) });
  t.is(await lines.request('whoami'), 'ok nobody');
});

test('reloadTls: new connections get the renewed certificate, established ones go on; a bad file keeps the current one', async (t) => {
  const { dir, caPem, server: first } = await tlsSetup(t);
  const live = { cert: join(dir, 'live.pem'), key: join(dir, 'live.key') };
  await copyFile(first.cert, live.cert);
  await copyFile(first.key, live.key);
  const { server, port } = await startServer(t, { tls: live });
  const before = await LineClient.connectTls(port, { ca: caPem });
  t.is(await before.request('ping'), 'ok pong');

  // The renewal comes from another CA, so which certificate a client got is plain to see.
  const renewalCa = await TestCa.create(dir, 'renewal');
  const renewed = await renewalCa.serverCertificate();
  await copyFile(renewed.cert, live.cert);
  await copyFile(renewed.key, live.key);
  await server.reloadTls();

  const after = await LineClient.connectTls(port, { ca: await renewalCa.pem() });
  t.is(await after.request('ping'), 'ok pong');
  await t.throwsAsync(LineClient.connectTls(port, { ca: caPem }), { message: /certificate/i }, 'the old certificate is no longer served');
  t.is(await before.request('ping'), 'ok pong', 'the established connection is untouched');

  await writeFile(live.key, 'not a key\n');
  const error = await t.throwsAsync(server.reloadTls(), { instanceOf: ConfigError });
  t.true(error!.message.includes(live.key));
  const still = await LineClient.connectTls(port, { ca: await renewalCa.pem() });
  t.is(await still.request('ping'), 'ok pong', 'the renewed certificate stays in service');
});

test('sessionserver serve: SIGHUP reloads the certificate files; new connections get the renewed one', async (t) => {
  const { dir, caPem, server: first } = await tlsSetup(t);
  const live = { cert: join(dir, 'live.pem'), key: join(dir, 'live.key') };
  await copyFile(first.cert, live.cert);
  await copyFile(first.key, live.key);
  const cli = await startCli(t, ['--storage', 'memory', '--tls-cert', live.cert, '--tls-key', live.key]);
  const before = await LineClient.connectTls(cli.port, { ca: caPem });
  t.is(await before.request('ping'), 'ok pong');

  const renewalCa = await TestCa.create(dir, 'renewal');
  const renewed = await renewalCa.serverCertificate();
  await copyFile(renewed.cert, live.cert);
  await copyFile(renewed.key, live.key);
  cli.child.kill('SIGHUP');
  const renewalPem = await renewalCa.pem();
  await until(async () => (await LineClient.connectTls(cli.port, { ca: renewalPem }).then((lines) => (lines.socket.destroy(), true), () => false)), 'the renewed certificate is served');
  await t.throwsAsync(LineClient.connectTls(cli.port, { ca: caPem }), { message: /certificate/i });
  t.is(await before.request('ping'), 'ok pong', 'the established connection is untouched');
  before.socket.destroy();
});

const startFailure = async (t: ExecutionContext, config: SessionServerConfig): Promise<string> => {
  const server = new SessionServer({ logLevel: 'silent', storage: 'memory', ...config });
  const error = await t.throwsAsync(server.listen({ port: 0, host: '127.0.0.1' }), { instanceOf: ConfigError });
  t.is(server.address(), null, 'no port was opened');
  return error!.message;
};

test('bad TLS files stop the start with a message naming the file and the problem', async (t) => {
  const { dir, ca, server: files } = await tlsSetup(t);
  const missing = join(dir, 'missing.pem');
  t.is(await startFailure(t, { tls: { cert: missing, key: files.key } }), `TLS certificate ${missing}: no such file (ENOENT)`);
  t.is(await startFailure(t, { tls: { cert: files.cert, key: missing } }), `TLS key ${missing}: no such file (ENOENT)`);
  t.is(await startFailure(t, { tls: { cert: files.cert, key: '' } }), `TLS: the certificate ${files.cert} needs its key (tls.key, --tls-key)`);
  t.is(await startFailure(t, { tls: { cert: files.cert, key: files.key, ca: dir } }), `TLS CA certificate ${dir}: is a directory, not a PEM file (EISDIR)`);
  const other = await ca.serverCertificate('other');
  t.true((await startFailure(t, { tls: { cert: files.cert, key: other.key } })).startsWith(`TLS key ${other.key} does not belong to the certificate ${files.cert}`));
  const garbage = join(dir, 'garbage.pem');
  await writeFile(garbage, 'hello\n');
  t.true((await startFailure(t, { tls: { cert: garbage, key: files.key } })).startsWith(`TLS certificate ${garbage}: not a PEM certificate`));
});

test('sessionserver serve: a missing certificate file exits non-zero with one line and no stack', async (t) => {
  const { dir, server: files } = await tlsSetup(t);
  const missing = join(dir, 'nope.pem');
  const cli = await startCli(t, ['--storage', 'memory', '--tls-cert', missing, '--tls-key', files.key]).catch((error: Error) => error);
  t.true(cli instanceof Error, 'the server did not start');
  const output = (cli as Error).message.replace(/^sessionserver exited early:\n/, '').trim();
  t.is(output, `TLS certificate ${missing}: no such file (ENOENT)`);
});

test('sessionserver serve: a certificate without a key is refused at start', async (t) => {
  const { server: files } = await tlsSetup(t);
  const cli = await startCli(t, ['--storage', 'memory', '--tls-cert', files.cert]).catch((error: Error) => error);
  t.true(cli instanceof Error);
  t.is((cli as Error).message.replace(/^sessionserver exited early:\n/, '').trim(), `TLS: the certificate ${files.cert} needs its key (tls.key, --tls-key)`);
});

test('sessionserver serve with SESSIONSERVER_TLS_* variables serves mutual TLS', async (t) => {
  const { ca, caPem, server: files } = await tlsSetup(t);
  const alice = await ca.clientCertificate('alice');
  const cli = await startCli(t, ['--storage', 'memory'], {
    env: { SESSIONSERVER_TLS_CERT: files.cert, SESSIONSERVER_TLS_KEY: files.key, SESSIONSERVER_TLS_CA: ca.cert },
  });
  await t.throwsAsync(async () => {
    const lines = await LineClient.connectTls(cli.port, { ca: caPem });
    // Under TLS 1.3 the refusal comes after the client's handshake: reading shows it.
    const reply = await lines.request('ping');
    if (reply === null) throw lines.error ?? new Error('closed');
  });
  const client = await SessionClient.connect({ port: cli.port, tls: { ca: caPem, servername: 'localhost', cert: await readFile(alice.cert), key: await readFile(alice.key) } });
  t.teardown(() => client.disconnect());
  t.is(await client.ping(), 'pong');
});

// PHP's handler over tls:// (Debian's php-cli; CI installs it, so there it never skips).
const PHP_AUTOLOAD = fileURLToPath(new URL('../clients/php/autoload.php', import.meta.url));
const phpTest = spawnSync('php', ['-v']).status === 0 || process.env.CI ? test : test.skip;

/** One PHP request: session_start with the handler over TLS, `$_SESSION['via']` set, written at the end. */
const PHP_REQUEST = `
require getenv('SS_AUTOLOAD');
ini_set('session.use_cookies', '0');
ini_set('session.use_only_cookies', '0');
ini_set('session.cache_limiter', '');
$file = fn (string $name) => getenv($name) === '' ? null : getenv($name);
session_set_save_handler(new SessionServer\\SessionHandler('127.0.0.1', (int) getenv('SS_PORT'), 15.0, null, true, $file('SS_CA'), $file('SS_CERT'), $file('SS_KEY')), true);
session_id(getenv('SS_SID'));
if (!@session_start()) {
    fwrite(STDERR, error_get_last()['message'] ?? 'session_start failed');
    exit(3);
}
$_SESSION['via'] = 'php over tls';
session_write_close();
echo "written\\n";
`;

function phpOverTls(port: number, sid: string, files: { ca: string; cert?: string; key?: string }): Promise<{ code: number; stdout: string; stderr: string }> {
  const env = { ...process.env, SS_AUTOLOAD: PHP_AUTOLOAD, SS_PORT: String(port), SS_SID: sid, SS_CA: files.ca, SS_CERT: files.cert ?? '', SS_KEY: files.key ?? '' };
  return new Promise((resolve) => {
    execFile('php', ['-r', PHP_REQUEST], { env, timeout: 20_000 }, (error, stdout, stderr) => {
      resolve({ code: error ? Number(error.code ?? 1) : 0, stdout, stderr });
    });
  });
}

phpTest('PHP sessions over tls:// with the CA option, and with a client certificate under mutual TLS', async (t) => {
  const { ca, caPem, server: files } = await tlsSetup(t);
  const { port } = await startServer(t, { tls: files });
  const run = await phpOverTls(port, 'php-over-tls', { ca: ca.cert });
  t.is(run.stdout, 'written\n', run.stderr);
  const client = await SessionClient.connect({ port, tls: { ca: caPem, servername: 'localhost' } });
  t.teardown(() => client.disconnect());
  await client.open('php-over-tls', 'r');
  t.is(await client.get('via'), 'php over tls');

  const php = await ca.clientCertificate('php-app');
  const mutual = await startServer(t, { tls: { ...files, ca: ca.cert } });
  t.is((await phpOverTls(mutual.port, 'php-mtls', { ca: ca.cert, cert: php.cert, key: php.key })).stdout, 'written\n');
  const refused = await phpOverTls(mutual.port, 'php-no-cert', { ca: ca.cert });
  t.not(refused.code, 0, 'without a client certificate PHP gets no session');
  t.regex(refused.stderr, /Failed to read session data/);
  t.is(await mutual.server.store.count(), 1, 'only the request with a certificate stored a session');
});

test("the README's TLS quick start makes a CA and certificates that work for mutual TLS", async (t) => {
  const readme = await readFile(fileURLToPath(new URL('../README.md', import.meta.url)), 'utf8');
  const start = readme.indexOf('```sh', readme.indexOf('**Quick start**'));
  const block = readme.slice(start + 6, readme.indexOf('```', start + 6));
  // The lines that make the files; the serve and s_client lines follow after a blank line.
  const makeFiles = block.split('\n\n')[0]!;
  t.regex(makeFiles, /openssl x509 -req -in client\.csr/);
  const dir = await tempDir(t, 'sessionserver-readme-tls-');
  await new Promise<void>((resolve, reject) => execFile('bash', ['-e', '-c', makeFiles], { cwd: dir }, (error) => (error ? reject(error) : resolve())));
  const file = (name: string) => join(dir, name);
  const { port } = await startServer(t, { tls: { cert: file('server.pem'), key: file('server.key'), ca: file('ca.pem') }, plugins: [whoami] });
  const client = await SessionClient.connect({ port, tls: { ca: await readFile(file('ca.pem')), cert: await readFile(file('client.pem')), key: await readFile(file('client.key')) } });
  t.teardown(() => client.disconnect());
  t.is(await client.request('whoami'), 'web-1');
});
