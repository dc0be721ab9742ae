import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import test from 'ava';
import { KeyValueServer, writeCounter } from '../examples/key-value-server.js';
import { LineClient } from './support/line-client.js';
import { modulesLoadedBy } from './support/loaded-modules.js';

// Entry points are checked on the build (dist/), as a user's `import` would load them.
const dist = (path: string) => fileURLToPath(new URL(`../dist/${path}`, import.meta.url));
const packageOf = (url: string) => /\/node_modules\/((?:@[^/]+\/)?[^/]+)\//.exec(url)?.[1];
const ownModule = (url: string) => /\/dist\/(.+)$/.exec(url)?.[1];

const SERVER_PACKAGES = ['pino', 'tapable', 'ioredis', 'pg', 'chokidar', 'tsx', 'esbuild', 'yargs', 'php-serialize'];

test('importing sessionserver/client loads none of the server dependencies and no server module', async (t) => {
  const loaded = await modulesLoadedBy(dist('client/index.js'));
  const own = loaded.map(ownModule).filter((path): path is string => path !== undefined);
  t.true(own.includes('client/index.js'), 'the recorder saw the entry itself');
  t.deepEqual(loaded.map(packageOf).filter((name) => name !== undefined && SERVER_PACKAGES.includes(name)), []);
  t.deepEqual(own.filter((path) => !path.startsWith('client/') && !path.startsWith('protocol/')), [], 'only client/ and protocol/ modules');
});

test('importing sessionserver/framework loads no session, storage or auth module and no driver', async (t) => {
  const loaded = await modulesLoadedBy(dist('core/index.js'));
  const own = loaded.map(ownModule).filter((path): path is string => path !== undefined);
  t.true(own.includes('core/line-server.js'));
  t.deepEqual(own.filter((path) => !path.startsWith('core/') && !path.startsWith('protocol/') && path !== 'config/defaults.js'), []);
  const packages = new Set(loaded.map(packageOf).filter((name) => name !== undefined));
  for (const name of ['ioredis', 'pg', 'php-serialize', 'tsx', 'esbuild', 'chokidar', 'yargs']) t.false(packages.has(name), `${name} not loaded`);
});

test('package.json exports the framework, client and driver entry points', async (t) => {
  const manifest = JSON.parse(await readFile(new URL('../package.json', import.meta.url), 'utf8')) as { exports: Record<string, { import: string }> };
  t.is(manifest.exports['./framework']?.import, './dist/core/index.js');
  t.is(manifest.exports['./client']?.import, './dist/client/index.js');
  t.is(manifest.exports['./storage/redis']?.import, './dist/storage/redis.js');
  t.is(manifest.exports['./storage/postgres']?.import, './dist/storage/postgres.js');
});

test('examples/key-value-server.ts: a protocol of its own from sessionserver/framework alone', async (t) => {
  const source = await readFile(new URL('../examples/key-value-server.ts', import.meta.url), 'utf8');
  const imports = [...source.matchAll(/^import .* from '([^']+)';$/gm)].map((match) => match[1]);
  t.deepEqual(imports, ['sessionserver/framework']);

  const server = new KeyValueServer({ logLevel: 'silent', plugins: [writeCounter] });
  const { port } = await server.listen({ port: 0, host: '127.0.0.1' });
  const client = await LineClient.connect(port);
  t.teardown(async () => {
    client.close();
    await server.close();
  });
  t.is(await client.request('set a 1'), 'ok');
  t.is(await client.request('incr a 41'), 'ok 42');
  t.is(await client.request('get a'), 'ok 42');
  t.is(await client.request('get b'), 'err no such key');
  t.is(await client.request('incr a x'), 'err not an integer');
  t.is(await client.request('del a'), 'ok 1');
  t.is(await client.request('del a'), 'ok 0');
  t.is(await client.request('writes'), 'ok 4', 'set, incr, del, del: failed writes and reads not counted');
  t.is(await client.request('open abc rw'), 'err unknown command', 'no session commands in a plain line server');
  t.is(await client.request('help'), 'ok del <key>; get <key>; hello; help [command]; incr <key> [by]; ping; quit; set <key> <value>; writes');
});

test('the session server imports the Redis and PostgreSQL drivers only when they are configured', async (t) => {
  const loaded = await modulesLoadedBy(dist('session/session-server.js'));
  const packages = new Set(loaded.map(packageOf).filter((name) => name !== undefined));
  t.true(packages.has('tapable'), 'the recorder saw the server load');
  t.false(packages.has('ioredis'));
  t.false(packages.has('pg'));
  t.deepEqual(loaded.map(ownModule).filter((path) => path === 'storage/redis.js' || path === 'storage/postgres.js'), []);
});
