import { execFile, spawn } from 'node:child_process';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { PassThrough, Writable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import test from 'ava';
import { hashPassword, verifyPassword } from '../lib/index.js';
import { CLIENT_EXIT, runClient } from '../lib/cli/client-repl.js';
import { TestCa } from './fixtures/test-ca.js';
import { startServer, tempDir } from './support/server.js';
import { until } from './support/wait.js';

// `sessionserver client --auth` / SESSIONSERVER_AUTH, no `auth` lines in the prompt's history,
// `--tls-ca/--tls-cert/--tls-key` against a mutual-TLS server, and `hash-password` without echo.

const TOKEN = 'client-token-41c7e2';
const PASSWORD = 'pass with spaces';
const CLI = fileURLToPath(new URL('../lib/cli/cli.ts', import.meta.url));
const CLI_ARGS = ['--import', 'tsx', '--input-type=module', '-e', `import { main } from ${JSON.stringify(CLI)}; await main(process.argv.slice(1));`];

class Capture extends Writable {
  text = '';
  override _write(chunk: Buffer, _encoding: string, done: () => void): void {
    this.text += chunk.toString();
    done();
  }
}

/** The CLI from the sources, as `sessionserver <args>` with `stdin` piped in. */
function cli(args: string[], options: { stdin?: string; env?: NodeJS.ProcessEnv } = {}) {
  return new Promise<{ code: number; stdout: string; stderr: string }>((resolve) => {
    const child = execFile(process.execPath, [...CLI_ARGS, ...args], { env: { ...process.env, ...options.env } }, (error, stdout, stderr) =>
      resolve({ code: error ? Number(error.code) : 0, stdout, stderr }),
    );
    child.stdin!.end(options.stdin ?? '');
  });
}

async function startWithAuth(t: Parameters<typeof startServer>[0]) {
  const alice = await hashPassword(PASSWORD);
  return startServer(t, { plugins: [['auth', { tokens: [TOKEN], users: { alice: { password: alice } }, failureDelayMs: 0, maxFailures: 100 }]] });
}

test('sessionserver client --auth logs in before a one-shot request and before requests from stdin', async (t) => {
  const { port } = await startWithAuth(t);
  const base = ['client', '--port', String(port)];
  const anonymous = await cli([...base, 'new']);
  t.deepEqual([anonymous.code, anonymous.stderr], [CLIENT_EXIT.serverError, 'err Authentication required\n']);

  const created = await cli([...base, '--auth', TOKEN, 'new']);
  t.is(created.code, CLIENT_EXIT.ok, created.stderr);
  t.regex(created.stdout, /^[0-9a-f]{32}\n$/);

  const piped = await cli([...base, '--auth', `alice ${PASSWORD}`], { stdin: 'open s rw\nput a 1\nget a\n' });
  t.deepEqual([piped.code, piped.stdout, piped.stderr], [CLIENT_EXIT.ok, 'ok\nok\nok 1\n', '']);

  const refused = await cli([...base, '--auth', 'not-the-token', 'new']);
  t.deepEqual([refused.code, refused.stdout, refused.stderr], [CLIENT_EXIT.serverError, '', 'err Authentication failed\n'], 'nothing is sent after a refused login');
  t.false(refused.stderr.includes('not-the-token'), 'the credential is not echoed');
});

test('SESSIONSERVER_AUTH does what --auth does, without showing the secret in ps', async (t) => {
  const { port } = await startWithAuth(t);
  const byToken = await cli(['client', '--port', String(port), 'new'], { env: { SESSIONSERVER_AUTH: TOKEN } });
  t.is(byToken.code, CLIENT_EXIT.ok, byToken.stderr);
  t.regex(byToken.stdout, /^[0-9a-f]{32}\n$/);
  const byPassword = await cli(['client', '--port', String(port), '--', 'open', 'x', 'rw'], { env: { SESSIONSERVER_AUTH: `alice ${PASSWORD}` } });
  t.deepEqual([byPassword.code, byPassword.stderr], [CLIENT_EXIT.ok, '']);
});

test('the prompt logs in with the auth option and never writes auth lines to its history file', async (t) => {
  const { port } = await startWithAuth(t);
  const historyFile = join(await tempDir(t), 'history');
  // A file from an older version that still holds a login: it is not offered again.
  await writeFile(historyFile, `auth ${TOKEN}\nping\n`);
  const input = new PassThrough();
  const output = new Capture();
  const done = runClient({ port, input, output, errorOutput: output, interactive: true, historyFile, auth: TOKEN });
  const waitFor = (pattern: RegExp) => until(() => pattern.test(output.text), `${pattern} in:\n${output.text}`);
  await waitFor(new RegExp(`127\\.0\\.0\\.1:${port}> $`));
  input.write('new\n');
  await waitFor(/\[[0-9a-f]{32} rw\]> $/);
  input.write(`auth alice ${PASSWORD}\n`);
  input.write('  AUTH wrong-token\n');
  input.write('close\n');
  await waitFor(/err Authentication failed\n[^\n]*> ok\n/);
  input.write('exit\n');
  t.is(await done, CLIENT_EXIT.ok);
  const history = await readFile(historyFile, 'utf8');
  t.deepEqual(history.trimEnd().split('\n'), [`auth ${TOKEN}`, 'ping', 'new', 'close', 'exit'], 'only the old file’s line is left as it was');
  t.false(history.includes(PASSWORD));
  t.false(history.includes('wrong-token'));
});

test('the prompt keeps auth lines out of its in-memory history (the up arrow)', async (t) => {
  const { port } = await startWithAuth(t);
  const input = new PassThrough();
  // A terminal, so readline keeps history and answers the up arrow.
  const output = Object.assign(new Capture(), { isTTY: true, columns: 120 });
  const done = runClient({ port, input, output, errorOutput: output, interactive: true, historyFile: null });
  const count = (text: string) => output.text.split(text).length - 1;
  await until(() => output.text.includes(`127.0.0.1:${port}> `), 'the prompt');
  input.write('ping\r');
  await until(() => count('ok pong') === 1, 'pong');
  input.write(`auth ${TOKEN}\r`);
  await until(() => count('ok\n') === 1, 'the login');
  // Up once: the latest line kept.
  input.write('\x1b[A\r');
  await until(() => count('ok pong') === 2 || count('ok\n') === 2, `the recalled line ran, in:\n${JSON.stringify(output.text)}`);
  t.deepEqual([count('ok pong'), count('ok\n')], [2, 1], 'the recalled line is ping: the auth line is not in the history');
  input.write('exit\r');
  t.is(await done, CLIENT_EXIT.ok);
});

test('sessionserver client --tls-ca/--tls-cert/--tls-key speaks mutual TLS', async (t) => {
  const dir = await tempDir(t, 'sessionserver-client-tls-');
  const ca = await TestCa.create(dir);
  const [serverFiles, clientFiles] = await Promise.all([ca.serverCertificate(), ca.clientCertificate('repl-user')]);
  const { port } = await startServer(t, { tls: { ...serverFiles, ca: ca.cert } });
  const base = ['client', '--port', String(port)];
  const mutual = await cli([...base, '--tls-ca', ca.cert, '--tls-cert', clientFiles.cert, '--tls-key', clientFiles.key, 'ping']);
  t.deepEqual([mutual.code, mutual.stdout, mutual.stderr], [CLIENT_EXIT.ok, 'pong\n', '']);

  const piped = await cli([...base, '--tls-ca', ca.cert, '--tls-cert', clientFiles.cert, '--tls-key', clientFiles.key], { stdin: 'new\nput k v\nget k\n' });
  t.deepEqual([piped.code, piped.stdout.split('\n').slice(1)], [CLIENT_EXIT.ok, ['ok', 'ok v', '']]);

  const withoutCertificate = await cli([...base, '--tls-ca', ca.cert, '--timeout', '5000', 'ping']);
  t.is(withoutCertificate.code, CLIENT_EXIT.connectionError, 'the server wants a client certificate');
  const unknownCa = await cli([...base, '--tls', '--timeout', '5000', 'ping']);
  t.is(unknownCa.code, CLIENT_EXIT.connectionError, 'without --tls-ca the test CA is not trusted');
  t.regex(unknownCa.stderr, /certificate/i);

  const missing = join(dir, 'missing.pem');
  const noFile = await cli([...base, '--tls-ca', missing, 'ping']);
  t.deepEqual([noFile.code, noFile.stderr], [CLIENT_EXIT.connectionError, `--tls-ca ${missing}: no such file\n`]);
  const half = await cli([...base, '--tls-cert', clientFiles.cert, 'ping']);
  t.deepEqual([half.code, half.stderr], [CLIENT_EXIT.connectionError, '--tls-cert and --tls-key go together\n']);
});

/** `sessionserver hash-password` on a pseudo-terminal (util-linux `script`): what the terminal shows. */
function hashOnTerminal(answers: string[]): Promise<{ code: number | null; screen: string }> {
  const command = [process.execPath, ...CLI_ARGS, 'hash-password'].map((arg) => `'${arg.replace(/'/g, "'\\''")}'`).join(' ');
  const child = spawn('script', ['-qfec', command, '/dev/null'], { stdio: ['pipe', 'pipe', 'pipe'] });
  let screen = '';
  const prompts = ['Password: ', 'Repeat password: '];
  child.stdout.setEncoding('utf8');
  child.stdout.on('data', (chunk: string) => {
    screen += chunk;
    // Answer each prompt once it shows, as a person would.
    while (prompts.length > 0 && answers.length > 0 && screen.includes(prompts[0]!)) {
      prompts.shift();
      child.stdin.write(`${answers.shift()}\r`);
    }
  });
  return new Promise((resolve) => child.on('close', (code) => resolve({ code, screen })));
}

test('hash-password asks twice without echo on a terminal and prints a verifiable hash', async (t) => {
  const secret = 'typed-not-shown 42';
  const { code, screen } = await hashOnTerminal([secret, secret]);
  t.is(code, 0, screen);
  t.false(screen.includes('typed-not-shown'), 'the password never appears on the terminal');
  const hash = /scrypt\$\S+/.exec(screen)?.[0];
  t.truthy(hash, screen);
  t.true(await verifyPassword(secret, hash!));

  const differ = await hashOnTerminal(['first try', 'second try']);
  t.not(differ.code, 0);
  t.regex(differ.screen, /the passwords differ/);
  t.notRegex(differ.screen, /scrypt\$/);
});
