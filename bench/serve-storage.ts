/**
 * Child process: sessionserver from the built package (dist/) on the store that the
 * BENCH_STORAGE variable names (JSON: `storage` plus that driver's settings), silent,
 * on a free loopback port. Run by storage.ts.
 */
import type { SessionServerConfig } from 'sessionserver';
import { loadBuiltPackage } from './built-package.js';
import { serveUnderControl } from './server-control.js';

const { SessionServer } = await loadBuiltPackage();

const storage = JSON.parse(process.env.BENCH_STORAGE ?? '{"storage":"memory"}') as SessionServerConfig;
const server = new SessionServer({ ...storage, logLevel: 'silent', gcInterval: 0 });
const { port } = await server.listen({ port: 0, host: '127.0.0.1' });
serveUnderControl(port, () => server.close());
