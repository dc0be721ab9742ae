import test, { type ExecutionContext } from 'ava';
import { Redis } from 'ioredis';
import type { RedisStore } from '../lib/index.js';
import { startOwnRedis } from './fixtures/redis-server.js';
import { startServer } from './support/server.js';
import { track, writersQueued } from './support/wait.js';

// What a web request costs in Redis, as Redis sees it: the commands clients sent (MONITOR of a
// Redis of the test's own; commands run by scripts are marked as such and left out). How fast
// that is, is measured by `npm run bench -- --only=cycle`.

/** Records the commands clients send (not those scripts run) until `stop`. */
async function watchCommands(t: ExecutionContext, url: string): Promise<{ stop(): Promise<string[]> }> {
  const marker = new Redis(url);
  await marker.ping();
  const source = new Redis(url);
  const monitor = await source.monitor();
  t.teardown(() => {
    for (const connection of [monitor, source, marker]) connection.disconnect();
  });
  const commands: string[] = [];
  let seenMarker: (() => void) | null = null;
  monitor.on('monitor', (_time: string, args: string[], source: string) => {
    if (args[0]?.toLowerCase() === 'echo' && args[1] === 'end-of-test') return seenMarker?.();
    if (!source.includes('lua')) commands.push(args[0]!.toLowerCase());
  });
  return {
    async stop() {
      // Commands reach MONITOR in order: once the marker is seen, every earlier one has been.
      const seen = new Promise<void>((resolve) => (seenMarker = resolve));
      await marker.echo('end-of-test');
      await seen;
      return commands;
    },
  };
}

test("open rw, put, get, close: two scripts on the session's slot per cycle, nothing else", async (t) => {
  const own = await startOwnRedis(t);
  const redis = new Redis(own.url);
  t.teardown(() => redis.disconnect());
  const { connect, server } = await startServer(t, { storage: 'redis', redisUrl: own.url, gcInterval: 0 });
  const c = await connect();
  const sid = (await c.request('new'))!.slice(3);
  t.deepEqual(await c.pipeline(['put k first', 'close']), ['ok', 'ok']);
  const watch = await watchCommands(t, own.url);
  for (let i = 0; i < 10; i++) t.deepEqual(await c.pipeline([`open ${sid} rw`, `put k v${i}`, 'get k', 'close']), ['ok', 'ok', `ok v${i}`, 'ok']);
  const commands = await watch.stop();
  t.deepEqual(commands, Array(20).fill('evalsha'), 'lock + load in one script, write + unlock in another; no shared sorted set, no PUBLISH');
  const store = server.store as RedisStore;
  t.is(await redis.exists(store.keys.lock(sid)), 0, 'the lock is gone after close');
  t.is(await redis.hget(store.keys.data(sid), '=k'), 'v9');
});

test('a release is published only when a writer waits for it', async (t) => {
  const own = await startOwnRedis(t);
  const listener = new Redis(own.url);
  t.teardown(() => listener.disconnect());
  const config = { storage: 'redis' as const, redisUrl: own.url, gcInterval: 0, lockLease: 60_000, lockTimeout: 30_000 };
  const a = await startServer(t, config);
  const b = await startServer(t, config);
  const onA = await a.connect();
  const onB = await b.connect();
  const sid = (await onA.request('new'))!.slice(3);
  t.is(await onA.request('close'), 'ok');
  const messages: string[] = [];
  const first = new Promise<void>((resolve) =>
    listener.on('message', (channel: string) => {
      messages.push(channel);
      resolve();
    }),
  );
  await listener.subscribe((a.server.store as RedisStore).keys.releases(sid));
  // Nobody waits: no announcement.
  t.deepEqual(await onA.pipeline([`open ${sid} rw`, 'put n 1', 'close']), ['ok', 'ok', 'ok']);
  // B waits for A: A's release is announced (and B, with a minute-long lease ahead, is woken by it).
  t.is(await onA.request(`open ${sid} rw`), 'ok');
  const waiting = track(onB.request(`open ${sid} rw`, 20_000));
  await writersQueued(b.server.sessions.locks, 1);
  t.deepEqual(await onA.pipeline(['put n 2', 'close']), ['ok', 'ok']);
  t.is(await waiting.promise, 'ok');
  await first;
  // Messages arrive in publishing order: had the first close published, it would be first here.
  t.is(messages.length, 1);
  t.is(await onB.request('get n'), 'ok 2');
});
