import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ExecutionContext } from 'ava';
import { SessionServer, type SessionServerConfig } from '../../lib/index.js';
import { LineClient } from './line-client.js';

export interface Running<S extends SessionServer = SessionServer> {
  server: S;
  port: number;
  connect(): Promise<LineClient>;
}

/** Starts a silent server on a free port and stops it (and its clients) when the test ends. */
export async function startServer(
  t: ExecutionContext,
  config: SessionServerConfig = {},
  make: (config: SessionServerConfig) => SessionServer = (c) => new SessionServer(c),
): Promise<Running> {
  const server = make({ logLevel: 'silent', storage: 'memory', ...config });
  const { port } = await server.listen({ port: 0, host: '127.0.0.1' });
  const clients: LineClient[] = [];
  t.teardown(async () => {
    for (const client of clients) client.close();
    await server.close();
  });
  return {
    server,
    port,
    async connect() {
      const client = await LineClient.connect(port);
      clients.push(client);
      return client;
    },
  };
}

/** A fresh folder removed after the test. */
export async function tempDir(t: ExecutionContext, prefix = 'sessionserver-'): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), prefix));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  return dir;
}
