import test from 'ava';
import { captureLogger } from './support/log-capture.js';
import { startServer } from './support/server.js';
import { until } from './support/wait.js';

test('logging: connections, commands (name, duration, outcome) and sessions, never values or ids', async (t) => {
  const { logger, lines, text } = captureLogger('debug');
  const { connect } = await startServer(t, { logger, plugins: ['logging'] });
  const c = await connect();
  const sid = (await c.request('new'))!.slice(3);
  await c.request('put secret_key value-that-must-not-be-logged');
  await c.request('get missing');
  await c.request('put_all {"card":"4111-1111-1111-1111","note":"line');
  await c.request('close');
  await c.request(`open ${sid} r`);
  c.close();
  await until(() => lines().some((line) => line.msg === 'disconnected'), 'the disconnect is logged');
  const log = lines();
  const commands = log.filter((line) => line.msg === 'command');
  t.deepEqual(commands.map((line) => [line.command, line.ok]), [['new', true], ['put', true], ['get', false], ['put_all', false], ['close', true], ['open', true]]);
  // Each command line carries its duration as a number (its size is the bench's business) at info level.
  t.deepEqual(commands.map((line) => [typeof line.durationMs, line.level]), commands.map(() => ['number', 30]));
  t.is(commands[2]!.error, 'Key does not exist');
  t.true(log.some((line) => line.msg === 'connected' && typeof line.remote === 'string'));
  t.true(log.some((line) => line.msg === 'disconnected'));
  t.true(log.some((line) => line.msg === 'session opened' && /^[0-9a-f]{12}$/.test(line.session)));
  const all = text();
  for (const secret of ['value-that-must-not-be-logged', '4111-1111-1111-1111', sid]) t.false(all.includes(secret), secret);
});

test('logging: the command level is configurable; the server log level filters it', async (t) => {
  const { logger, lines } = captureLogger('info');
  const { connect } = await startServer(t, { logger, plugins: [['logging', { commands: 'debug' }]] });
  const c = await connect();
  t.is(await c.request('ping'), 'ok pong');
  c.close();
  // Everything about the connection is logged by the time its disconnect is.
  await until(() => lines().some((line) => line.msg === 'disconnected'), 'the disconnect is logged');
  t.false(lines().some((line) => line.msg === 'command'));
  t.true(lines().some((line) => line.msg === 'connected'));
});
