import { defineConfig } from 'sessionserver';

// Used by `npm start` / `npx sessionserver` in this folder. Every field can be
// overridden by a flag (--port 9191) or an environment variable (SESSIONSERVER_PORT=9191).
export default defineConfig({
  host: '127.0.0.1',
  port: 9090,
  storage: 'filesystem',
  savePath: './sessions',
  lockTimeout: 10_000,
  maxLifetime: 1440,
});
