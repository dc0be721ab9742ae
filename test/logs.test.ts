import { spawn } from 'node:child_process';
import test from 'ava';
import { BIN, freePort, startCli } from './support/cli-process.js';
import { TestCa } from './fixtures/test-ca.js';
import { tempDir } from './support/server.js';
import { until } from './support/wait.js';

// The server's own log lines, read from the real binary's stdout.

const ANSI_ESCAPE = /\u001b\[\d+m/;

function jsonLines(output: string): Array<Record<string, unknown>> {
  return output.split('\n').filter((line) => line.trim() !== '').map((line) => JSON.parse(line) as Record<string, unknown>);
}

/** The environment of a child that decides colours by itself. */
function withoutColourOverrides(): NodeJS.ProcessEnv {
  const env = { ...process.env };
  delete env.FORCE_COLOR;
  delete env.NO_COLOR;
  return env;
}

test('--log-format json: a "listening" line naming address, storage and TLS, a "stopped" line at shutdown', async (t) => {
  const server = await startCli(t, ['--storage', 'memory', '--log-format', 'json'], { cwd: await tempDir(t) });
  await until(() => server.output().includes('sessionserver listening'), 'the listening line');
  server.child.kill('SIGTERM');
  t.is(await server.exited, 0);
  const lines = jsonLines(server.output());
  const listening = lines.find((line) => line.msg === 'sessionserver listening');
  t.like(listening, { host: '127.0.0.1', port: server.port, storage: 'memory', tls: 'off', level: 30 });
  t.like(lines.at(-1), { msg: 'sessionserver stopped', signal: 'SIGTERM' });
  t.true(lines.findIndex((line) => line.msg === 'stopping: finishing commands and writing open sessions') < lines.length - 1);
});

test('logs are JSON lines when stdout is not a terminal and no format is asked for', async (t) => {
  const server = await startCli(t, ['--storage', 'memory'], { cwd: await tempDir(t), env: withoutColourOverrides() });
  await until(() => server.output().includes('sessionserver listening'), 'the listening line');
  server.child.kill('SIGTERM');
  t.is(await server.exited, 0);
  const lines = jsonLines(server.output());
  t.true(lines.some((line) => line.msg === 'sessionserver listening'));
  t.true(lines.some((line) => line.msg === 'sessionserver stopped'));
});

test('--log-format pretty: readable lines, without colour codes when stdout is a pipe', async (t) => {
  const server = await startCli(t, ['--storage', 'memory', '--log-format', 'pretty'], { cwd: await tempDir(t), env: withoutColourOverrides() });
  await until(() => server.output().includes('sessionserver listening'), 'the listening line');
  server.child.kill('SIGTERM');
  t.is(await server.exited, 0);
  const output = server.output();
  t.regex(output, /INFO \(sessionserver\): sessionserver listening\n\s+host: "127\.0\.0\.1"\n\s+port: \d+\n\s+storage: "memory"\n\s+tls: "off"/);
  t.regex(output, /INFO \(sessionserver\): sessionserver stopped/);
  t.false(ANSI_ESCAPE.test(output));
  t.throws(() => JSON.parse(output.split('\n')[0]!));
});

test('on a terminal the logs are coloured lines by default', async (t) => {
  const port = await freePort();
  // `script` gives the server a pseudo-terminal as stdout; `sh` tells the server's pid first.
  const command = `sh -c 'echo PID=$$; exec "${process.execPath}" "${BIN}" serve --port ${port} --storage memory'`;
  const child = spawn('script', ['-qfec', command, '/dev/null'], { cwd: await tempDir(t), env: { ...withoutColourOverrides(), TERM: 'xterm-256color' }, stdio: ['pipe', 'pipe', 'pipe'] });
  let output = '';
  child.stdout.on('data', (chunk) => (output += chunk));
  child.stderr.on('data', (chunk) => (output += chunk));
  const exited = new Promise((resolve) => child.once('exit', resolve));
  let pid: number | undefined;
  t.teardown(() => {
    if (pid !== undefined && child.exitCode === null) process.kill(pid, 'SIGKILL');
    if (child.exitCode === null) child.kill('SIGKILL');
  });
  await until(() => /PID=\d+/.test(output), 'the server pid', 15_000);
  pid = Number(/PID=(\d+)/.exec(output)![1]);
  await until(() => output.includes('sessionserver listening'), 'the listening line', 15_000);
  process.kill(pid, 'SIGTERM');
  await until(() => output.includes('sessionserver stopped'), 'the stopped line', 15_000);
  await exited;
  t.regex(output, ANSI_ESCAPE);
  t.regex(output, /INFO.*\(sessionserver\):.*sessionserver listening/);
  t.false(output.split(/\r?\n/).some((line) => line.startsWith('{"level"')));
});

test('the "listening" line tells TLS on and mutual TLS apart', async (t) => {
  const dir = await tempDir(t);
  const ca = await TestCa.create(dir);
  const server = await ca.serverCertificate();
  const states: unknown[] = [];
  for (const extra of [[], ['--tls-ca', ca.cert]]) {
    const cli = await startCli(t, ['--storage', 'memory', '--log-format', 'json', '--tls-cert', server.cert, '--tls-key', server.key, ...extra], { cwd: dir });
    await until(() => cli.output().includes('sessionserver listening'), 'the listening line');
    cli.child.kill('SIGTERM');
    t.is(await cli.exited, 0);
    states.push(jsonLines(cli.output()).find((line) => line.msg === 'sessionserver listening')?.tls);
  }
  t.deepEqual(states, ['on', 'mutual']);
});
