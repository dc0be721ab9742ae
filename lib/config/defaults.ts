/**
 * Every default in one place: the server constructors, config validation, the CLI's help
 * and the README's tables read them from here. Plain data, importable from any layer.
 */
export const DEFAULTS = {
  storage: 'filesystem',
  host: '127.0.0.1',
  port: 9090,
  savePath: './sessions',
  lockTimeout: 10_000,
  maxLifetime: 1440,
  gcInterval: 60,
  redisUrl: 'redis://127.0.0.1:6379',
  redisPrefix: 'sessionserver:',
  postgresTable: 'sessionserver_sessions',
  postgresPoolSize: 10,
  lockLease: 10_000,
  storageTimeout: 1000,
  maxSessionSize: 16 * 1024 * 1024,
  maxInputBuffer: 256 * 1024 * 1024,
  metricsHost: '127.0.0.1',
  redisWaitReplicas: 0,
  // The line core's limits.
  maxLineLength: 1024 * 1024,
  maxConnections: 10_000,
  idleTimeout: 600,
  maxUnknownCommands: 10,
  commandsDir: './commands',
} as const;
