import { execFile, spawn } from 'node:child_process';
import { once } from 'node:events';
import { createServer, type AddressInfo } from 'node:net';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import test from 'ava';
import { BIN, freePort, REPO_ROOT, startCli } from './support/cli-process.js';
import { serveFlags } from './support/serve-flags.js';
import { CONFIG_KEYS } from '../lib/config/config.js';
import { tempDir } from './support/server.js';

// The real binary's answers to bad flags, variables and config files, and `sessionserver config`.

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** The environment without anything that would configure the server behind the test's back. */
function cleanEnv(extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [name, value] of Object.entries(process.env)) if (!/^(SESSIONSERVER_|PG[A-Z]+$)/.test(name)) env[name] = value;
  return { ...env, ...extra };
}

function runCli(args: string[], options: { cwd: string; env?: NodeJS.ProcessEnv }): Promise<Run> {
  return new Promise((resolve) => {
    execFile(process.execPath, [BIN, ...args], { cwd: options.cwd, env: cleanEnv(options.env), timeout: 30_000 }, (error, stdout, stderr) => {
      resolve({ code: error ? ((error as { code?: number }).code ?? null) : 0, stdout, stderr });
    });
  });
}

/** stderr holds exactly one line, and no stack trace. */
function oneLine(run: Run): string {
  const lines = run.stderr.split('\n').filter((line) => line !== '');
  if (lines.length !== 1) throw new Error(`expected one line on stderr, got:\n${run.stderr}`);
  return lines[0]!;
}

test('a bad flag value prints one line naming the flag and the help, exit 2', async (t) => {
  const cwd = await tempDir(t);
  const run = await runCli(['serve', '--port', 'abc'], { cwd });
  t.is(run.code, 2);
  t.is(oneLine(run), '--port must be an integer between 1 and 65535 (see sessionserver serve --help)');
  t.is(run.stdout, '');
  const negative = await runCli(['--lock-timeout', '-5'], { cwd });
  t.is(negative.code, 2);
  t.regex(oneLine(negative), /^--lock-timeout must be an integer between 0 and \d+ \(see sessionserver serve --help\)$/);
  const missing = await runCli(['--port'], { cwd });
  t.is(missing.code, 2);
  t.is(oneLine(missing), '--port needs a value (see sessionserver serve --help)');
});

test('an unknown flag or choice prints one line with the closest valid name', async (t) => {
  const cwd = await tempDir(t);
  const typo = await runCli(['--lock-timeot', '5'], { cwd });
  t.is(typo.code, 2);
  t.is(oneLine(typo), 'unknown flag --lock-timeot (did you mean --lock-timeout?) (see sessionserver serve --help)');
  const choice = await runCli(['--storage', 'redsi'], { cwd });
  t.is(choice.code, 2);
  t.is(oneLine(choice), '--storage must be one of memory, filesystem, redis, postgres, got "redsi" (see sessionserver serve --help)');
});

test('SESSIONSERVER_* variables: an unknown one is named with the closest valid one; a bad value names the variable', async (t) => {
  const cwd = await tempDir(t);
  const unknown = await runCli([], { cwd, env: { SESSIONSERVER_PROT: '9000' } });
  t.is(unknown.code, 2);
  t.is(oneLine(unknown), 'unknown variable SESSIONSERVER_PROT (did you mean SESSIONSERVER_PORT?) (see sessionserver serve --help)');
  const bad = await runCli([], { cwd, env: { SESSIONSERVER_MAX_CONNECTIONS: '0' } });
  t.is(bad.code, 2);
  t.is(oneLine(bad), 'SESSIONSERVER_MAX_CONNECTIONS must be an integer >= 1 (see sessionserver serve --help)');
});

test('an unknown key in the config file stops the start with its name and the closest valid name', async (t) => {
  const cwd = await tempDir(t);
  await writeFile(join(cwd, 'sessionserver.config.mjs'), 'export default { storage: "memory", lockTimout: 500 };\n');
  const run = await runCli(['--port', String(await freePort())], { cwd });
  t.is(run.code, 1);
  t.is(oneLine(run), `${join(cwd, 'sessionserver.config.mjs')}: unknown key "lockTimout" (did you mean "lockTimeout"?)`);
  t.false(run.stdout.includes('listening'));

  await writeFile(join(cwd, 'nested.config.mjs'), 'export default { tls: { cert: "a.pem", kee: "b.pem" } };\n');
  const nested = await runCli(['--config', 'nested.config.mjs'], { cwd });
  t.is(nested.code, 1);
  t.is(oneLine(nested), `${join(cwd, 'nested.config.mjs')}: unknown key "tls.kee" (did you mean "tls.key"?)`);

  await writeFile(join(cwd, 'broken.config.ts'), 'export default { port: 9090, \n');
  const broken = await runCli(['--config', 'broken.config.ts'], { cwd });
  t.is(broken.code, 1);
  t.regex(oneLine(broken), /^could not load .*broken\.config\.ts: .*broken\.config\.ts:2:0/);

  await writeFile(join(cwd, 'range.config.mjs'), 'export default { port: 70000 };\n');
  const range = await runCli(['--config', 'range.config.mjs'], { cwd });
  t.is(range.code, 1);
  t.is(oneLine(range), `${join(cwd, 'range.config.mjs')}: port must be an integer between 1 and 65535, got 70000`);
});

test('--commands-dir that does not exist is an error; the default may be absent', async (t) => {
  const cwd = await tempDir(t);
  const run = await runCli(['--storage', 'memory', '--port', String(await freePort()), '--commands-dir', 'no-such-folder'], { cwd });
  t.is(run.code, 1);
  t.is(oneLine(run), `--commands-dir: no such folder: ${join(cwd, 'no-such-folder')}`);
  // cwd has no ./commands: the default folder may be missing.
  const server = await startCli(t, ['--storage', 'memory', '--log-format', 'json'], { cwd, env: cleanEnv() });
  server.child.kill('SIGTERM');
  t.is(await server.exited, 0);
});

test('--storage postgres without a URL or PG* variables says what to set', async (t) => {
  const cwd = await tempDir(t);
  const run = await runCli(['--storage', 'postgres', '--port', String(await freePort())], { cwd });
  t.is(run.code, 1);
  const line = oneLine(run);
  t.regex(line, /^storage postgres needs a database: set --postgres-url \(or SESSIONSERVER_POSTGRES_URL, or postgresUrl in the config file\)/);
  t.regex(line, /PGHOST/);
});

test('a plugin whose apply throws stops the start with one line naming the plugin and its path', async (t) => {
  const cwd = await tempDir(t);
  const plugin = join(cwd, 'broken-plugin.mjs');
  await writeFile(plugin, 'export default { name: "broken", apply() { throw new Error("no licence key"); } };\n');
  const run = await runCli(['--storage', 'memory', '--port', String(await freePort()), '--plugin', plugin, '--log-level', 'silent'], { cwd });
  t.is(run.code, 1);
  t.is(oneLine(run), `plugin "broken" (${plugin}) failed to apply: no licence key`);
  t.false(run.stderr.includes('    at '));
});

test('sessionserver config prints each value with its source (flag, env, file, default), secrets redacted', async (t) => {
  const cwd = await tempDir(t);
  await mkdir(join(cwd, 'cmds'));
  await writeFile(
    join(cwd, 'sessionserver.config.mjs'),
    `export default {
      storage: 'redis',
      redisUrl: 'redis://app:file-secret@10.0.0.5:6379/2',
      commandsDir: 'cmds',
      plugins: [['auth', { tokens: ['token-in-the-file'], users: { alice: { password: 'scrypt$hash-in-the-file' } } }]],
    };\n`,
  );
  const run = await runCli(['config', '--port', '9191'], { cwd, env: { SESSIONSERVER_LOCK_TIMEOUT: '2500' } });
  t.is(run.code, 0, run.stderr);
  const lines = run.stdout.split('\n');
  const row = (key: string) => lines.find((line) => line.startsWith(`${key} = `))?.replace(/\s+/g, ' ');
  t.is(lines[0], `# config file: ${join(cwd, 'sessionserver.config.mjs')}`);
  t.is(row('port'), 'port = 9191 (flag)');
  t.is(row('lockTimeout'), 'lockTimeout = 2500 (env)');
  t.is(row('storage'), 'storage = redis (file)');
  t.is(row('commandsDir'), 'commandsDir = cmds (file)');
  t.is(row('host'), 'host = 127.0.0.1 (default)');
  t.is(row('redisUrl'), 'redisUrl = redis://app:[redacted]@10.0.0.5:6379/2 (file)');
  t.is(row('plugins[0]'), 'plugins[0] = auth {"tokens":"[redacted]","users":{"alice":{"password":"[redacted]"}}} (file)');
  for (const secret of ['file-secret', 'token-in-the-file', 'hash-in-the-file']) t.false(run.stdout.includes(secret), secret);

  const json = await runCli(['config', '--json', '--redis-url', 'redis://:flag-secret@127.0.0.1:6380'], { cwd });
  t.is(json.code, 0, json.stderr);
  const parsed = JSON.parse(json.stdout) as { configFile: string; settings: Array<{ key: string; value: unknown; source: string }> };
  t.is(parsed.configFile, join(cwd, 'sessionserver.config.mjs'));
  t.deepEqual(parsed.settings.find((setting) => setting.key === 'redisUrl'), { key: 'redisUrl', value: 'redis://:[redacted]@127.0.0.1:6380', source: 'flag' });
  t.deepEqual(parsed.settings.find((setting) => setting.key === 'maxLineLength')?.source, 'default');
  t.false(json.stdout.includes('flag-secret'));
});

test("README's CLI table lists every serve flag, and only real ones", async (t) => {
  const readme = await readFile(join(REPO_ROOT, 'README.md'), 'utf8');
  const section = readme.slice(readme.indexOf('\n## CLI\n'), readme.indexOf('\n## Configuration file\n'));
  const table = /```\n(sessionserver \[serve\][\s\S]*?)```/.exec(section)![1]!;
  const documented = new Set([...table.matchAll(/(?<![\w-])(--[a-z0-9-]+)/g)].map((match) => match[1]!));
  const real = await serveFlags();
  for (const flag of real) t.true(documented.has(flag), `${flag} is in the README`);
  for (const flag of documented) if (flag !== '--json') t.true(real.has(flag), `${flag} is a real flag`);
});

test("one environment serves every subcommand: another subcommand's variable is accepted, its flag is not", async (t) => {
  const cwd = await tempDir(t);
  // A container's serve settings are there when `sessionserver client` or `hash-password` runs in it.
  const hash = await new Promise<Run>((resolve) => {
    const child = execFile(process.execPath, [BIN, 'hash-password'], { cwd, env: cleanEnv({ SESSIONSERVER_STORAGE: 'redis', SESSIONSERVER_LOCK_TIMEOUT: '500' }) }, (error, stdout, stderr) =>
      resolve({ code: error ? ((error as { code?: number }).code ?? null) : 0, stdout, stderr }),
    );
    child.stdin!.end('a password\n');
  });
  t.is(hash.code, 0, hash.stderr);
  t.regex(hash.stdout, /^scrypt\$/);
  // A client's SESSIONSERVER_AUTH is there when serve (here: config) runs from the same shell.
  const config = await runCli(['config'], { cwd, env: { SESSIONSERVER_AUTH: 'client-token' } });
  t.is(config.code, 0, config.stderr);
  t.false(config.stdout.includes('client-token'));
  const flag = await runCli(['config', '--auth', 'x'], { cwd });
  t.is(flag.code, 2);
  t.is(oneLine(flag), 'unknown flag --auth (see sessionserver config --help)');
  const typo = await runCli(['hash-password'], { cwd, env: { SESSIONSERVER_STROAGE: 'redis' } });
  t.is(typo.code, 2);
  t.is(oneLine(typo), 'unknown variable SESSIONSERVER_STROAGE (did you mean SESSIONSERVER_STORAGE?) (see sessionserver hash-password --help)');
});

test('sessionserver config: nested settings and plugins from the file and the command line, each with its source', async (t) => {
  const cwd = await tempDir(t);
  await writeFile(join(cwd, 'sessionserver.config.mjs'), "export default { plugins: ['logging'], tls: { cert: 'file-cert.pem', key: 'file-key.pem' } };\n");
  const run = await runCli(['config', '--json', '--tls-ca', 'ca.pem', '--tls-cert', 'cert.pem', '--tls-key', 'key.pem', '--metrics-port', '9300', '--watch'], { cwd });
  t.is(run.code, 0, run.stderr);
  const { settings } = JSON.parse(run.stdout) as { settings: Array<{ key: string; value: unknown; source: string }> };
  const byKey = Object.fromEntries(settings.map((setting) => [setting.key, [setting.value, setting.source]]));
  t.deepEqual(byKey['tls.cert'], ['cert.pem', 'flag']);
  t.deepEqual(byKey['tls.ca'], ['ca.pem', 'flag']);
  t.deepEqual(byKey['metrics.port'], [9300, 'flag']);
  t.deepEqual(byKey['metrics.host'], ['127.0.0.1', 'default']);
  t.deepEqual(byKey['plugins[0]'], ['logging', 'file']);
  t.deepEqual(byKey['plugins[1]'], ['hot-reload', 'flag']);
  t.false('tls' in byKey, 'the tls object is shown field by field');
});

test('every config key has a serve flag of the same name (the nested ones and objects have their own)', async (t) => {
  const flags = await serveFlags();
  const kebab = (key: string) => `--${key.replace(/[A-Z]/g, (letter) => `-${letter.toLowerCase()}`)}`;
  for (const key of CONFIG_KEYS) {
    if (key === 'logger') continue;
    const expected = key === 'plugins' ? ['--plugin'] : key === 'tls' ? ['--tls-cert', '--tls-key', '--tls-ca'] : key === 'metrics' ? ['--metrics-port', '--metrics-host'] : [kebab(key)];
    for (const flag of expected) t.true(flags.has(flag), `${key}: ${flag}`);
  }
});

test('SIGTERM while the store is still connecting ends the process at once, exit 0', async (t) => {
  const cwd = await tempDir(t);
  // A "Redis" that accepts and never answers: the server waits for it, within no timeout.
  const silent = createServer(() => {});
  silent.listen(0, '127.0.0.1');
  await once(silent, 'listening');
  t.teardown(() => silent.close());
  const connected = once(silent, 'connection');
  const { port: redisPort } = silent.address() as AddressInfo;
  const child = spawn(
    process.execPath,
    [BIN, 'serve', '--port', String(await freePort()), '--storage', 'redis', '--redis-url', `redis://127.0.0.1:${redisPort}`, '--storage-timeout', '0', '--log-format', 'json'],
    { cwd, env: cleanEnv(), stdio: ['ignore', 'pipe', 'pipe'] },
  );
  t.teardown(() => child.kill('SIGKILL'));
  let output = '';
  child.stdout!.on('data', (chunk) => (output += chunk));
  const exited = once(child, 'exit') as Promise<[number | null, string | null]>;
  await connected;
  child.kill('SIGTERM');
  t.deepEqual(await exited, [0, null]);
  t.regex(output, /"signal":"SIGTERM".*stopping before the server started/);
});
