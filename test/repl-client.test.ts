import { execFile } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { PassThrough, Readable, Writable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import test from 'ava';
import { CLIENT_EXIT, runClient } from '../lib/cli/client-repl.js';
import { startServer, tempDir } from './support/server.js';
import { until } from './support/wait.js';

// `sessionserver client`: stdin mode, one-shot mode and the prompt, against a real server.

class Capture extends Writable {
  text = '';
  override _write(chunk: Buffer, _encoding: string, done: () => void): void {
    this.text += chunk.toString();
    done();
  }
}

function lines(...requests: string[]): Readable {
  return Readable.from([requests.map((r) => `${r}\n`).join('')]);
}

test('stdin mode: one request per line, each reply printed as the server sent it, exit 1 when any failed', async (t) => {
  const { port } = await startServer(t);
  const output = new Capture();
  const errorOutput = new Capture();
  const code = await runClient({
    port,
    input: lines('new', 'put user alice', '# a comment', '', 'get user', 'frobnicate', 'keys', 'close'),
    output,
    errorOutput,
  });
  const replies = output.text.trimEnd().split('\n');
  t.regex(replies[0]!, /^ok [0-9a-f]{32}$/);
  t.deepEqual(replies.slice(1), ['ok', 'ok alice', 'err unknown command', 'ok user', 'ok']);
  t.is(code, CLIENT_EXIT.serverError);
  t.is(errorOutput.text, '');

  const clean = new Capture();
  t.is(await runClient({ port, input: lines('ping', 'hello'), output: clean }), CLIENT_EXIT.ok);
  t.regex(clean.text, /^ok pong\nok sessionserver \S+ protocol=1 /);
});

test('one-shot mode prints the payload alone (for $(…)), an err on stderr, with exit codes', async (t) => {
  const { port } = await startServer(t);
  const out = () => new Capture();
  const created = out();
  t.is(await runClient({ port, command: ['new'], output: created }), CLIENT_EXIT.ok);
  const sid = created.text.trim();
  t.regex(sid, /^[0-9a-f]{32}$/);
  const opened = out();
  t.is(await runClient({ port, command: ['open', sid, 'r'], output: opened }), CLIENT_EXIT.ok);
  t.is(opened.text, '', 'a bare ok prints nothing');
  const missing = out();
  const missingErr = out();
  t.is(await runClient({ port, command: ['open', 'no-such-session', 'r'], output: missing, errorOutput: missingErr }), CLIENT_EXIT.serverError);
  t.is(missing.text, '');
  t.is(missingErr.text, 'err Could not open session.\n');
  const help = out();
  t.is(await runClient({ port, command: ['help'], output: help }), CLIENT_EXIT.ok);
  t.true(help.text.split('\n').includes('open <sid> [r|w|rw]'), 'help: one usage per line');

  const { server } = await startServer(t);
  const deadPort = server.address()!.port;
  await server.close();
  const refused = out();
  t.is(await runClient({ port: deadPort, command: ['ping'], errorOutput: refused }), CLIENT_EXIT.connectionError);
  t.regex(refused.text, /ECONNREFUSED/);
});

test('the prompt shows host:port and the open session, prints replies plainly, keeps history', async (t) => {
  const { port } = await startServer(t);
  const historyFile = join(await tempDir(t), 'history');
  const input = new PassThrough();
  const output = new Capture();
  const done = runClient({ port, input, output, errorOutput: output, interactive: true, historyFile });
  const waitFor = (pattern: RegExp) => until(() => pattern.test(output.text), `${pattern} in:\n${output.text}`);
  await waitFor(new RegExp(`127\\.0\\.0\\.1:${port}> $`));
  input.write('new\n');
  await waitFor(/\[[0-9a-f]{32} rw\]> $/);
  const sid = /ok ([0-9a-f]{32})/.exec(output.text)![1]!;
  input.write('put greeting hello big world\n');
  input.write('get greeting\n');
  await waitFor(/ok hello big world\n/);
  input.write('help\n');
  await waitFor(/\nttl \[seconds\|default\]\n/);
  input.write('commit\n');
  await waitFor(new RegExp(`\\[${sid} r\\]> $`));
  input.write('get nothing\n');
  await waitFor(/err Key does not exist\n/);
  input.write('close\n');
  await waitFor(new RegExp(`ok\\n127\\.0\\.0\\.1:${port}> $`));
  input.write('exit\n');
  t.is(await done, CLIENT_EXIT.ok);
  t.deepEqual((await readFile(historyFile, 'utf8')).trimEnd().split('\n'), [
    'new',
    'put greeting hello big world',
    'get greeting',
    'help',
    'commit',
    'get nothing',
    'close',
    'exit',
  ]);
});

test('the sessionserver CLI wires `client`: stdin, one-shot, and `--` before a request', async (t) => {
  const { port } = await startServer(t);
  const cli = fileURLToPath(new URL('../lib/cli/cli.ts', import.meta.url));
  const run = (args: string[], stdin = '') =>
    new Promise<{ code: number; stdout: string; stderr: string }>((resolve) => {
      const child = execFile(
        process.execPath,
        ['--import', 'tsx', '--input-type=module', '-e', `import { main } from ${JSON.stringify(cli)}; await main(process.argv.slice(1));`, ...args],
        (error, stdout, stderr) => resolve({ code: error ? Number(error.code) : 0, stdout, stderr }),
      );
      child.stdin!.end(stdin);
    });
  const created = await run(['client', '--port', String(port), 'new']);
  t.is(created.code, 0, created.stderr);
  const sid = created.stdout.trim();
  t.regex(sid, /^[0-9a-f]{32}$/);
  const [opened, missing, piped] = await Promise.all([
    run(['client', '--port', String(port), '--', 'open', sid, 'r']),
    run(['client', '--port', String(port), '--', 'open', 'nobody', 'r']),
    run(['client', '--port', String(port)], `open ${sid} rw\nput a 1\nget a\n`),
  ]);
  t.deepEqual([opened.code, opened.stdout], [0, '']);
  t.deepEqual([missing.code, missing.stderr], [1, 'err Could not open session.\n']);
  t.deepEqual([piped.code, piped.stdout], [0, 'ok\nok\nok 1\n']);
});
