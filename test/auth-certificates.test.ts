import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { ConnectionOptions } from 'node:tls';
import test, { type ExecutionContext } from 'ava';
import { SessionServer, type SessionServerConfig } from '../lib/index.js';
import { TestCa } from './fixtures/test-ca.js';
import { captureLogger } from './support/log-capture.js';
import { LineClient } from './support/line-client.js';
import { startServer, tempDir } from './support/server.js';
import { until } from './support/wait.js';

// The auth plugin's `certificates` option: under mutual TLS a verified client certificate
// whose CN is listed logs its connection in, no `auth` line, with that CN's grants. Real
// servers, real TLS sockets, certificates made by openssl for this file.

const AUTH_PLUGIN = fileURLToPath(new URL('../plugins/auth.ts', import.meta.url));
const TOKEN = 'cert-test-token-41c9e2';
const REQUIRED = 'err Authentication required';
const READ_ONLY = 'err Read-only user';
const NOT_ALLOWED = 'err Command not allowed';

/** One CA for the file: the server's certificate and client certificates by CN. */
interface Pki {
  dir: string;
  ca: TestCa;
  caPem: Buffer;
  server: { cert: string; key: string };
  /** Client TLS options presenting the certificate of `commonName`. */
  client(commonName: string): ConnectionOptions;
}

let pki: Promise<Pki> | undefined;

function sharedPki(): Promise<Pki> {
  pki ??= (async () => {
    const dir = await mkdtemp(join(tmpdir(), 'sessionserver-auth-cert-'));
    const ca = await TestCa.create(dir);
    const caPem = await ca.pem();
    const server = await ca.serverCertificate();
    const clients = new Map<string, ConnectionOptions>();
    for (const commonName of ['app-1', 'reporter', 'limited', 'stranger']) {
      const files = await ca.clientCertificate(commonName);
      clients.set(commonName, { ca: caPem, cert: await readFile(files.cert), key: await readFile(files.key) });
    }
    return { dir, ca, caPem, server, client: (commonName) => clients.get(commonName)! };
  })();
  return pki;
}

test.after.always(async () => {
  if (pki) await rm((await pki).dir, { recursive: true, force: true });
});

/** Command files: `whoami` (declares read) answers ctx.user. */
async function commandFiles(t: ExecutionContext): Promise<string> {
  const dir = await tempDir(t);
  await writeFile(join(dir, 'whoami.mjs'), "export default { name: 'whoami', access: 'read', run: (ctx) => ctx.user ?? '-' };\n");
  return dir;
}

const CERTIFICATES = {
  'app-1': {},
  reporter: { readOnly: true },
  limited: { user: 'limited-job', commands: ['whoami', 'ping'] },
};

async function startMutual(t: ExecutionContext, options: object = { tokens: [TOKEN], certificates: CERTIFICATES }, config: SessionServerConfig = {}) {
  const { ca, server: files } = await sharedPki();
  return startServer(t, { tls: { ...files, ca: ca.cert }, commandsDir: await commandFiles(t), plugins: [['auth', options]], ...config });
}

test('a listed certificate CN runs commands from its first line, without auth, as cert:<CN>', async (t) => {
  const { client } = await sharedPki();
  const { port } = await startMutual(t);
  const app = await tlsLines(t, port, client('app-1'));
  t.is(await app.request('whoami'), 'ok cert:app-1', 'the first line already runs');
  const id = (await app.request('new'))!;
  t.regex(id, /^ok [0-9a-f]{32}$/);
  t.is(await app.request('put colour blue'), 'ok');
  t.is(await app.request('get colour'), 'ok blue');
  t.is(await app.request('close'), 'ok');
  t.is(await app.request(`open ${id.slice(3)} rw`), 'ok');
  t.is(await app.request('close'), 'ok');
  t.is(await app.request('auth not-the-token'), 'err Authentication failed');
  t.is(await app.request('whoami'), 'ok cert:app-1', 'a failed auth keeps the certificate login');
  t.is(await app.request(`auth ${TOKEN}`), 'ok');
  t.is(await app.request('whoami'), 'ok token#1', 'a successful auth replaces it');
});

test('a read-only CN may open r and read, and is refused writes', async (t) => {
  const { client } = await sharedPki();
  const { port } = await startMutual(t);
  const app = await tlsLines(t, port, client('app-1'));
  t.is(await app.request('open shared rw'), 'ok');
  t.is(await app.request('put colour blue'), 'ok');
  t.is(await app.request('close'), 'ok');

  const reporter = await tlsLines(t, port, client('reporter'));
  t.is(await reporter.request('whoami'), 'ok cert:reporter');
  t.is(await reporter.request('new'), READ_ONLY);
  t.is(await reporter.request('open shared rw'), READ_ONLY);
  t.is(await reporter.request('open shared r'), 'ok');
  t.is(await reporter.request('get colour'), 'ok blue');
  t.is(await reporter.request('put colour red'), READ_ONLY);
  t.is(await reporter.request('close'), 'ok');
});

test('a CN entry takes a user name and a command allow-list', async (t) => {
  const { client } = await sharedPki();
  const { port } = await startMutual(t);
  const limited = await tlsLines(t, port, client('limited'));
  t.is(await limited.request('whoami'), 'ok limited-job');
  t.is(await limited.request('new'), NOT_ALLOWED);
  t.is(await limited.request('ping'), 'ok pong');
});

test('an unlisted CN gets no login: Authentication required until it sends a valid token', async (t) => {
  const { client } = await sharedPki();
  const { port } = await startMutual(t, { tokens: [{ token: TOKEN, user: 'token-user' }], certificates: CERTIFICATES, failureDelayMs: 0 });
  const stranger = await tlsLines(t, port, client('stranger'));
  t.is(await stranger.request('whoami'), REQUIRED);
  t.is(await stranger.request('new'), REQUIRED);
  t.is(await stranger.request('ping'), 'ok pong', 'public commands still run');
  t.is(await stranger.request('auth not-the-token'), 'err Authentication failed');
  t.is(await stranger.request('new'), REQUIRED);
  t.is(await stranger.request(`auth ${TOKEN}`), 'ok');
  t.is(await stranger.request('whoami'), 'ok token-user');
  t.regex((await stranger.request('new'))!, /^ok [0-9a-f]{32}$/);
});

test('without the option a certificate logs nobody in, even under mutual TLS', async (t) => {
  const { client } = await sharedPki();
  const { port } = await startMutual(t, { tokens: [TOKEN] });
  const app = await tlsLines(t, port, client('app-1'));
  t.is(await app.request('whoami'), REQUIRED);
  t.is(await app.request(`auth ${TOKEN}`), 'ok');
  t.is(await app.request('whoami'), 'ok token#1');
});

test('certificates alone are a configuration: no token or user needed', async (t) => {
  const { client } = await sharedPki();
  const { port } = await startMutual(t, { certificates: { 'app-1': {} } });
  const app = await tlsLines(t, port, client('app-1'));
  t.is(await app.request('whoami'), 'ok cert:app-1');
  const stranger = await tlsLines(t, port, client('stranger'));
  t.is(await stranger.request('whoami'), REQUIRED);
});

test('the connection is logged in before its first line: its user shows in the log of a client that sent nothing', async (t) => {
  const { client } = await sharedPki();
  const { logger, lines } = captureLogger();
  const { port } = await startMutual(t, undefined, { logger, plugins: ['logging', ['auth', { certificates: CERTIFICATES }]] });
  const app = await tlsLines(t, port, client('app-1'));
  const stranger = await tlsLines(t, port, client('stranger'));
  // Once both connections are known to the server, hang up without a line.
  await until(() => lines().filter((line) => line.msg === 'connected').length === 2, 'both clients connected');
  app.socket.end();
  stranger.socket.end();
  await until(() => lines().filter((line) => line.msg === 'disconnected').length === 2, 'both clients disconnected');
  const users = lines()
    .filter((line) => line.msg === 'disconnected')
    .map((line) => line.user ?? null)
    .sort();
  t.deepEqual(users, ['cert:app-1', null]);
});

test('a server without mutual TLS refuses to start with the option', async (t) => {
  const { server: files, ca } = await sharedPki();
  const configs: Array<[string, SessionServerConfig]> = [
    ['plain TCP', {}],
    ['TLS without a CA', { tls: files }],
    ['a CA but no client certificates asked for', { tls: { ...files, ca: ca.cert, requestCert: false } }],
  ];
  for (const [what, config] of configs) {
    const server = new SessionServer({ storage: 'memory', logLevel: 'silent', plugins: [['auth', { tokens: [TOKEN], certificates: { 'app-1': {} } }]], ...config });
    t.teardown(() => server.close());
    await t.throwsAsync(server.listen({ port: 0, host: '127.0.0.1' }), { message: /"certificates" needs mutual TLS: set tls\.ca \(--tls-ca\)/ }, what);
  }
});

test('a malformed certificates option is refused at start, naming the problem', async (t) => {
  const { server: files, ca } = await sharedPki();
  const cases: Array<[unknown, RegExp]> = [
    [['app-1'], /"certificates" maps client certificate CNs to grants/],
    [{ 'app-1': true }, /certificate "app-1" needs an object of grants/],
    [{ 'app-1': { commands: 'new' } }, /certificate "app-1": "commands" must be a list/],
    [{ 'app-1': { user: '' } }, /certificate "app-1": "user" must be a non-empty string/],
    [{ '': {} }, /empty CN/],
    [{}, /at least one token or user/],
  ];
  for (const [certificates, message] of cases) {
    const server = new SessionServer({ storage: 'memory', logLevel: 'silent', tls: { ...files, ca: ca.cert }, plugins: [['auth', { certificates }]] });
    t.teardown(() => server.close());
    await t.throwsAsync(server.listen({ port: 0, host: '127.0.0.1' }), { message }, JSON.stringify(certificates));
  }
});

test('a reload keeps certificate logins, applies new grants and logs out a CN no longer listed', async (t) => {
  const { client } = await sharedPki();
  const dir = await tempDir(t);
  const file = join(dir, 'site-auth.mjs');
  // A site plugin file with the configuration inside: saving it reloads auth with new options.
  const writeConfig = (options: object) =>
    writeFile(file, `import auth from ${JSON.stringify(AUTH_PLUGIN)};\nconst options = ${JSON.stringify(options)};\nexport default { name: 'auth', apply: (server, _options, ctx) => auth.apply(server, options, ctx) };\n`);
  await writeConfig({ tokens: [TOKEN], certificates: { 'app-1': {}, reporter: {} } });
  const { server, port } = await startMutual(t, undefined, { plugins: [file] });
  const app = await tlsLines(t, port, client('app-1'));
  const reporter = await tlsLines(t, port, client('reporter'));
  t.is(await app.request('whoami'), 'ok cert:app-1');
  t.is(await reporter.request('whoami'), 'ok cert:reporter');

  t.is(await server.plugins.reload(file), undefined);
  t.regex((await reporter.request('new'))!, /^ok [0-9a-f]{32}$/, 'logins survive a reload of the same configuration');

  await writeConfig({ tokens: [TOKEN], certificates: { reporter: { readOnly: true } } });
  t.is(await server.plugins.reload(file), undefined);
  t.is(await reporter.request('close'), 'ok');
  t.is(await reporter.request('new'), READ_ONLY, 'the new grants apply');
  t.is(await app.request('whoami'), REQUIRED, 'a CN no longer listed is logged out');
  t.is(await app.request(`auth ${TOKEN}`), 'ok', 'and may still log in with a token');
  t.is(await app.request('whoami'), 'ok token#1');
});

/** A line client over TLS presenting `options`' certificate, closed when the test ends. */
async function tlsLines(t: ExecutionContext, port: number, options: ConnectionOptions): Promise<LineClient> {
  const client = await LineClient.connectTls(port, options);
  t.teardown(() => client.close());
  return client;
}
