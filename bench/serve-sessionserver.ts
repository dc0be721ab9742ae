/**
 * Child process: sessionserver from the built package (dist/), memory store, silent,
 * on a free loopback port. Run by targets.ts; `--cpu-prof` is added by the parent.
 */
import { loadBuiltPackage } from './built-package.js';
import { serveUnderControl } from './server-control.js';

const { SessionServer } = await loadBuiltPackage();

const server = new SessionServer({
  storage: 'memory',
  logLevel: 'silent',
  // The memory measurement holds 10,000 clients at once; the default limit is exactly that.
  maxConnections: 20_000,
});
const { port } = await server.listen({ port: 0, host: '127.0.0.1' });
serveUnderControl(port, () => server.close());
