import { once } from 'node:events';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Registry } from 'prom-client';

export interface MetricsEndpointOptions {
  port: number;
  host: string;
  registry: Registry;
  /** Resolves true when the server can serve (`/healthz` 200), false otherwise (503); must settle in bounded time. */
  healthy(): Promise<boolean>;
}

export interface MetricsEndpoint {
  readonly address: AddressInfo;
  close(): Promise<void>;
}

/** Where a server's metrics endpoint listens; Symbol.for, so every copy of this module sees the same slot. */
const ENDPOINT_ADDRESS = Symbol.for('sessionserver.metricsAddress');

/**
 * The address of the metrics HTTP port of `server` (its metrics plugin applied), or null:
 * how to find it after configuring `metrics: { port: 0 }`.
 */
export function metricsAddress(server: object): AddressInfo | null {
  return (server as Record<symbol, AddressInfo | undefined>)[ENDPOINT_ADDRESS] ?? null;
}

/**
 * Serves `GET /metrics` (Prometheus text exposition of `registry`) and `GET /healthz` on a
 * port of its own, apart from the line protocol. Records its address on `owner` (see
 * metricsAddress) until closed.
 */
export async function startMetricsEndpoint(owner: object, options: MetricsEndpointOptions): Promise<MetricsEndpoint> {
  const server = createServer((request, response) => void respond(options, request, response));
  // Scrapers and probes send small requests; a client trickling its headers is dropped.
  server.headersTimeout = 5000;
  server.requestTimeout = 10_000;
  server.listen(options.port, options.host);
  await Promise.race([once(server, 'listening'), once(server, 'error').then(([error]) => Promise.reject(error))]);
  server.on('error', () => {});
  const address = server.address() as AddressInfo;
  (owner as Record<symbol, AddressInfo | undefined>)[ENDPOINT_ADDRESS] = address;
  return {
    address,
    async close() {
      if (metricsAddress(owner) === address) delete (owner as Record<symbol, AddressInfo | undefined>)[ENDPOINT_ADDRESS];
      const closed = once(server, 'close');
      server.close();
      server.closeAllConnections();
      await closed;
    },
  };
}

async function respond(options: MetricsEndpointOptions, request: IncomingMessage, response: ServerResponse): Promise<void> {
  const path = (request.url ?? '/').split('?')[0];
  if (path !== '/metrics' && path !== '/healthz') return send(response, 404, 'text/plain; charset=utf-8', 'not found: try /metrics or /healthz\n');
  if (request.method !== 'GET' && request.method !== 'HEAD') {
    response.setHeader('Allow', 'GET, HEAD');
    return send(response, 405, 'text/plain; charset=utf-8', 'method not allowed\n');
  }
  try {
    if (path === '/metrics') return send(response, 200, options.registry.contentType, await options.registry.metrics());
    const healthy = await options.healthy();
    return send(response, healthy ? 200 : 503, 'text/plain; charset=utf-8', healthy ? 'ok\n' : 'storage unavailable\n');
  } catch {
    return send(response, 500, 'text/plain; charset=utf-8', 'metrics failed\n');
  }
}

function send(response: ServerResponse, status: number, contentType: string, body: string): void {
  response.writeHead(status, { 'Content-Type': contentType, 'Cache-Control': 'no-store', 'Content-Length': Buffer.byteLength(body) });
  response.end(response.req.method === 'HEAD' ? undefined : body);
}
