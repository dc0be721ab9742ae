/**
 * Child process: the same server as serve-sessionserver.ts (built package, memory store,
 * silent) with the metrics plugin on, its HTTP port on a free loopback port. Run by
 * metrics-overhead.ts, which scrapes /metrics while the load runs.
 */
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { loadBuiltPackage } from './built-package.js';
import { REPO_ROOT } from './children.js';
import { serveUnderControl } from './server-control.js';

const { SessionServer } = await loadBuiltPackage();
const { metricsAddress }: typeof import('../lib/metrics/http-endpoint.js') = await import(pathToFileURL(join(REPO_ROOT, 'dist', 'metrics', 'http-endpoint.js')).href);

const server = new SessionServer({ storage: 'memory', logLevel: 'silent', maxConnections: 20_000, metrics: { port: 0 } });
const { port } = await server.listen({ port: 0, host: '127.0.0.1' });
// The metrics port goes first: the parent reads it with the `listening` report.
process.send?.({ type: 'metrics-port', port: metricsAddress(server)?.port });
serveUnderControl(port, () => server.close());
