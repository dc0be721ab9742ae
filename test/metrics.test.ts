import { readFile, rm, writeFile } from 'node:fs/promises';
import { connect } from 'node:net';
import test, { type ExecutionContext } from 'ava';
import { metricsAddress } from '../lib/metrics/http-endpoint.js';
import { MemoryStore, type SessionServer, type SessionServerConfig, type SessionStore } from '../lib/index.js';
import { freePort, startCli } from './support/cli-process.js';
import { startServer, tempDir } from './support/server.js';
import { until, writersQueued } from './support/wait.js';

/** One scrape: `name{label="value",…}` (labels sorted by name) → value. */
type Samples = Map<string, number>;

function parseExposition(text: string): Samples {
  const samples: Samples = new Map();
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const match = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!match) throw new Error(`not an exposition line: ${line}`);
    const labels = [...(match[2] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)].map(([, name, value]) => `${name}="${value}"`).sort();
    samples.set(labels.length ? `${match[1]}{${labels.join(',')}}` : match[1]!, Number(match[3]));
  }
  return samples;
}

async function httpGet(port: number, path: string): Promise<{ status: number; contentType: string | null; body: string }> {
  const response = await fetch(`http://127.0.0.1:${port}${path}`, { signal: AbortSignal.timeout(15_000) });
  return { status: response.status, contentType: response.headers.get('content-type'), body: await response.text() };
}

async function scrape(port: number): Promise<Samples> {
  const { status, body } = await httpGet(port, '/metrics');
  if (status !== 200) throw new Error(`/metrics answered ${status}`);
  return parseExposition(body);
}

async function startWithMetrics(t: ExecutionContext, config: SessionServerConfig = {}) {
  const running = await startServer(t, { metrics: { port: 0 }, ...config });
  const address = metricsAddress(running.server);
  if (!address) throw new Error('the metrics endpoint is not listening');
  return { ...running, metricsPort: address.port };
}

const value = (samples: Samples, key: string) => samples.get(key) ?? 0;

test('/metrics counts commands exactly, by command and result, with their durations', async (t) => {
  const { connect: open, metricsPort } = await startWithMetrics(t);
  const client = await open();
  t.regex((await client.request('new')) ?? '', /^ok /);
  const puts = Array.from({ length: 37 }, (_, i) => `put key${i} value${i}`);
  t.true((await client.pipeline(puts)).every((reply) => reply === 'ok'));
  t.is(await client.request('get key3'), 'ok value3');
  for (let i = 0; i < 5; i++) t.is(await client.request('get missing'), 'err Key does not exist');

  const samples = await scrape(metricsPort);
  t.is(value(samples, 'sessionserver_commands_total{command="put",result="ok"}'), 37);
  t.is(value(samples, 'sessionserver_commands_total{command="put",result="err"}'), 0);
  t.is(value(samples, 'sessionserver_commands_total{command="get",result="ok"}'), 1);
  t.is(value(samples, 'sessionserver_commands_total{command="get",result="err"}'), 5);
  t.is(value(samples, 'sessionserver_commands_total{command="new",result="ok"}'), 1);
  t.is(value(samples, 'sessionserver_command_duration_seconds_count{command="put"}'), 37);
  t.is(value(samples, 'sessionserver_command_duration_seconds_bucket{command="put",le="+Inf"}'), 37);
  t.is(value(samples, 'sessionserver_command_duration_seconds_count{command="get"}'), 6);
  // Buckets are cumulative: each holds at least the one below, the last all of them.
  const putBuckets = [...samples].filter(([key]) => key.startsWith('sessionserver_command_duration_seconds_bucket{command="put"')).map(([, n]) => n);
  t.true(putBuckets.length > 10);
  t.deepEqual(putBuckets, [...putBuckets].sort((a, b) => a - b));
  t.is(value(samples, 'sessionserver_connections'), 1);
  t.true(value(samples, 'process_resident_memory_bytes') > 0, "prom-client's process metrics are there");

  // 37 more puts: exactly +37.
  t.true((await client.pipeline(puts)).every((reply) => reply === 'ok'));
  t.is(value(await scrape(metricsPort), 'sessionserver_commands_total{command="put",result="ok"}'), 74);
});

test('the exposition carries exactly the issue\'s metric names and types', async (t) => {
  const { metricsPort } = await startWithMetrics(t);
  const { contentType, body } = await httpGet(metricsPort, '/metrics');
  t.regex(contentType ?? '', /^text\/plain; version=0\.0\.4/);
  const types = new Map([...body.matchAll(/^# TYPE (sessionserver_\S+) (\S+)$/gm)].map(([, name, type]) => [name, type]));
  t.deepEqual(Object.fromEntries(types), {
    sessionserver_connections: 'gauge',
    sessionserver_commands_total: 'counter',
    sessionserver_command_duration_seconds: 'histogram',
    sessionserver_open_sessions: 'gauge',
    sessionserver_lock_wait_seconds: 'histogram',
    sessionserver_storage_errors_total: 'counter',
  });
});

test('open sessions by mode and connections follow the clients', async (t) => {
  const { connect: open, metricsPort } = await startWithMetrics(t);
  const writer = await open();
  const reader = await open();
  const id = (await writer.request('new'))!.slice(3);
  t.is(await writer.request('put colour blue'), 'ok');
  t.is(await writer.request('commit'), 'ok');
  t.is(await writer.request('close'), 'ok');
  t.is(await writer.request(`open ${id} w`), 'ok');
  t.is(await reader.request(`open ${id} r`), 'ok');
  let samples = await scrape(metricsPort);
  t.is(value(samples, 'sessionserver_open_sessions{mode="rw"}'), 1, 'a w-mode open counts as rw');
  t.is(value(samples, 'sessionserver_open_sessions{mode="r"}'), 1);
  t.is(value(samples, 'sessionserver_connections'), 2);

  t.is(await writer.request('commit'), 'ok');
  samples = await scrape(metricsPort);
  t.is(value(samples, 'sessionserver_open_sessions{mode="rw"}'), 0, 'commit continues read-only');
  t.is(value(samples, 'sessionserver_open_sessions{mode="r"}'), 2);

  t.is(await reader.request('quit'), 'ok');
  t.is(await writer.request('close'), 'ok');
  await until(async () => value(await scrape(metricsPort), 'sessionserver_connections') === 1, 'the reader is gone');
  samples = await scrape(metricsPort);
  t.is(value(samples, 'sessionserver_open_sessions{mode="r"}'), 0);
  t.is(value(samples, 'sessionserver_open_sessions{mode="rw"}'), 0);
});

test('lock waits are observed for every writer, those that got the lock and those that gave up', async (t) => {
  const { connect: open, server, metricsPort } = await startWithMetrics(t, { lockTimeout: 60_000 });
  const holder = await open();
  const waiter = await open();
  const quitter = await open();
  t.is(await holder.request('open contested rw'), 'ok');
  waiter.send('open contested rw');
  quitter.send('open contested rw');
  await writersQueued(server.sessions.locks, 2);
  t.is(value(await scrape(metricsPort), 'sessionserver_lock_wait_seconds_count'), 1, 'only the holder has its lock so far');
  // A writer whose connection is reset stops waiting: its wait is observed as it ends.
  quitter.socket.resetAndDestroy();
  await until(async () => value(await scrape(metricsPort), 'sessionserver_lock_wait_seconds_count') === 2, 'the abandoned wait is observed');
  t.is(await holder.request('close'), 'ok');
  t.is(await waiter.read(), 'ok');
  const samples = await scrape(metricsPort);
  t.is(value(samples, 'sessionserver_lock_wait_seconds_count'), 3);
  t.is(value(samples, 'sessionserver_lock_wait_seconds_bucket{le="+Inf"}'), 3);
  t.is(value(samples, 'sessionserver_open_sessions{mode="rw"}'), 1, 'the waiter holds it now');
});

test('storage errors are counted, whatever command met them; client mistakes are not', async (t) => {
  const savePath = await tempDir(t);
  const { connect: open, metricsPort } = await startWithMetrics(t, { storage: 'filesystem', savePath });
  const client = await open();
  t.is(await client.request('get nothing'), 'err No session opened.');
  t.is(await client.request('open bad/id rw'), 'err Could not open session.');
  t.is(value(await scrape(metricsPort), 'sessionserver_storage_errors_total'), 0);

  // The store's folder becomes a file: every storage operation fails from now on.
  await rm(savePath, { recursive: true, force: true });
  await writeFile(savePath, 'not a folder');
  // Whichever of these reach the store fail there; the client is told `Storage unavailable`.
  let failed = 0;
  for (const round of [1, 2]) {
    const replies = await client.pipeline([`open fresh${round} rw`, 'put a 1', 'close']);
    const storageFailures = replies.filter((reply) => reply === 'err Storage unavailable').length;
    t.true(storageFailures >= 1, replies.join(' / '));
    failed += storageFailures;
    t.is(value(await scrape(metricsPort), 'sessionserver_storage_errors_total'), failed, `round ${round}: ${replies.join(' / ')}`);
  }
});

/** A real store implementation whose reads never answer: a frozen backend, under the test's control. */
class FrozenStore extends MemoryStore {
  loads = 0;
  override load(): Promise<never> {
    this.loads++;
    return new Promise(() => {});
  }
}

test('/healthz: 200 while the store answers, 503 when it does not, and the request still returns', async (t) => {
  const { metricsPort } = await startWithMetrics(t);
  t.deepEqual(await httpGet(metricsPort, '/healthz'), { status: 200, contentType: 'text/plain; charset=utf-8', body: 'ok\n' });

  const frozen = new FrozenStore();
  const stuck = await startWithMetrics(t, { storage: frozen as SessionStore });
  const [first, second] = await Promise.all([httpGet(stuck.metricsPort, '/healthz'), httpGet(stuck.metricsPort, '/healthz')]);
  t.is(first.status, 503);
  t.is(first.body, 'storage unavailable\n');
  t.is(second.status, 503);
  t.is((await httpGet(stuck.metricsPort, '/healthz')).status, 503);
  t.is(frozen.loads, 1, 'a hanging store gets one probe, not one per request');
  t.is((await httpGet(stuck.metricsPort, '/metrics')).status, 200, 'metrics are served meanwhile');
});

test('/healthz follows the storage timeout when it is shorter', async (t) => {
  const frozen = new FrozenStore();
  const { metricsPort } = await startWithMetrics(t, { storage: frozen as SessionStore, storageTimeout: 50 });
  t.is((await httpGet(metricsPort, '/healthz')).status, 503);
});

test('other paths and methods are refused', async (t) => {
  const { metricsPort } = await startWithMetrics(t);
  t.is((await httpGet(metricsPort, '/')).status, 404);
  const response = await fetch(`http://127.0.0.1:${metricsPort}/metrics`, { method: 'POST', signal: AbortSignal.timeout(15_000) });
  t.is(response.status, 405);
  t.is(response.headers.get('allow'), 'GET, HEAD');
});

test('two servers in one process keep their own metrics', async (t) => {
  const a = await startWithMetrics(t);
  const b = await startWithMetrics(t);
  const client = await a.connect();
  await client.request('new');
  t.is(await client.request('put only a'), 'ok');
  t.is(value(await scrape(a.metricsPort), 'sessionserver_commands_total{command="put",result="ok"}'), 1);
  t.is(value(await scrape(b.metricsPort), 'sessionserver_commands_total{command="put",result="ok"}'), 0);
  t.is(value(await scrape(b.metricsPort), 'sessionserver_connections'), 0);
});

test('without a metrics port there is no metrics plugin and no HTTP port; closing the server closes the port', async (t) => {
  const { server } = await startServer(t);
  t.is(metricsAddress(server), null);
  t.false(server.plugins.names().includes('metrics'));

  const withMetrics = await startWithMetrics(t);
  t.deepEqual(withMetrics.server.plugins.names(), ['metrics']);
  await withMetrics.server.close();
  t.is(metricsAddress(withMetrics.server as SessionServer), null);
  const refused = await new Promise<boolean>((resolve) => {
    const socket = connect(withMetrics.metricsPort, '127.0.0.1', () => {
      socket.destroy();
      resolve(false);
    });
    socket.once('error', () => resolve(true));
  });
  t.true(refused, 'the metrics port is closed with the server');
});

test('sessionserver serve with SESSIONSERVER_METRICS_PORT serves /metrics and /healthz', async (t) => {
  const metricsPort = await freePort();
  const cli = await startCli(t, ['--storage', 'memory'], { env: { SESSIONSERVER_METRICS_PORT: String(metricsPort) } });
  await until(async () => (await httpGet(metricsPort, '/healthz').catch(() => null))?.status === 200, 'the metrics port answers');
  const socket = connect(cli.port, '127.0.0.1');
  socket.write('new\nput a 1\nput b 2\n');
  await until(async () => value(await scrape(metricsPort), 'sessionserver_commands_total{command="put",result="ok"}') === 2, 'both puts counted');
  socket.destroy();
  t.is(value(await scrape(metricsPort), 'sessionserver_commands_total{command="new",result="ok"}'), 1);
});

test("the README's PromQL and the example Grafana dashboard query only series /metrics serves", async (t) => {
  const { connect: open, metricsPort } = await startWithMetrics(t, { lockTimeout: 1000 });
  const client = await open();
  await client.request('open any rw'); // a lock wait, so the lock histogram has series
  const served = new Set([...(await scrape(metricsPort)).keys()].map((key) => key.split('{')[0]!));
  const readme = await readFile(new URL('../README.md', import.meta.url), 'utf8');
  const section = readme.slice(readme.indexOf('\n## Metrics and health\n'), readme.indexOf('\n## Scale-out'));
  const promql = section.slice(section.indexOf('```promql'), section.indexOf('```', section.indexOf('```promql') + 9));
  const dashboard = JSON.parse(await readFile(new URL('../examples/grafana-dashboard.json', import.meta.url), 'utf8')) as { panels: Array<{ targets: Array<{ expr: string }> }> };
  const queries = [promql, ...dashboard.panels.flatMap((panel) => panel.targets.map((target) => target.expr))];
  const names = new Set(queries.flatMap((query) => [...query.matchAll(/\b(sessionserver_[a-z_]+|process_[a-z_]+)\b/g)].map((match) => match[1]!)));
  t.true(names.size >= 6, 'the queries name the metrics');
  for (const name of names) t.true(served.has(name), `${name} is served`);
  for (const wanted of ['sessionserver_commands_total', 'sessionserver_command_duration_seconds_bucket', 'sessionserver_lock_wait_seconds_bucket']) {
    t.true(names.has(wanted), `the queries use ${wanted}`);
  }
});
