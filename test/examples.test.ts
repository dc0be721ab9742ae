import test from 'ava';
import { AuditedServer } from '../examples/audited-server.js';
import { SessionServer } from '../lib/index.js';
import { startServer } from './support/server.js';

test('the examples/ subclass adds commands and overrides put', async (t) => {
  // The example imports the package by its name, as a user would; tsconfig "paths" map that
  // name to lib/ (for tsx as for the type-checker), so the example runs on these sources.
  const { connect, server } = await startServer(t, {}, (config) => new AuditedServer(config));
  t.true(server instanceof SessionServer, 'one module copy: the sources');
  const c = await connect();
  await c.request('new');
  t.is(await c.request('put a 1'), 'ok');
  t.is(await c.request('put __x 1'), 'err Keys starting with __ are reserved');
  t.is(await c.request('snapshot'), 'ok {"a":"1"}');
  t.is(await c.request('writes'), 'ok 1');
  await c.request('commit');
  t.is(await c.request('put b 2'), 'err Could not store value', 'the override kept the write guard');
});
