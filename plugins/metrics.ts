/**
 * metrics — Prometheus metrics and a health check over HTTP, on a port of their own.
 *
 *   sessionserver serve --metrics-port 9464          (config `metrics: { port, host }`)
 *   plugins: [['metrics', { port: 9464, host: '127.0.0.1' }]]
 *
 * `GET /metrics`: sessionserver_connections, sessionserver_commands_total{command,result},
 * sessionserver_command_duration_seconds{command}, sessionserver_open_sessions{mode},
 * sessionserver_lock_wait_seconds, sessionserver_storage_errors_total and prom-client's
 * process metrics. `GET /healthz`: 200 when the store answers a cheap read in time, else 503.
 * Each server has a registry of its own; the counts restart when the plugin is reloaded.
 */
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { LineServer } from '../lib/core/line-server.js';
import { definePlugin } from '../lib/core/plugin-host.js';
import { CommandTally, durationHistogram } from '../lib/metrics/command-tally.js';
import { startMetricsEndpoint } from '../lib/metrics/http-endpoint.js';
import { storeProbe } from '../lib/metrics/store-probe.js';
import type { SessionServerHooks } from '../lib/session/hooks.js';
import type { SessionConnection } from '../lib/session/session-connection.js';
import type { SessionStore } from '../lib/storage/contract.js';

export interface MetricsOptions {
  /** HTTP port of /metrics and /healthz; 0 picks a free one (see metricsAddress). */
  port: number;
  /** Address to bind. Default 127.0.0.1: metrics tell a lot about a deployment. */
  host?: string;
  /** Milliseconds the store may take to answer the health probe. Default 1000, at most 2500 so /healthz answers within ~3 s. */
  storageTimeout?: number;
}

const HEALTH_TIMEOUT_CAP_MS = 2500;
// Commands take microseconds when the store is not involved, up to the lock timeout when it is.
const COMMAND_BUCKETS = [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];
// Uncontended locks come at once (in-process) or in a round trip (Redis, PostgreSQL); contended ones up to lockTimeout (10 s).
const LOCK_WAIT_BUCKETS = [0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];

export default definePlugin<MetricsOptions, LineServer>({
  name: 'metrics',
  async apply(server, options, plugin) {
    const port = options?.port;
    if (!Number.isSafeInteger(port) || port < 0 || port > 65535) throw new Error(`metrics: port must be a whole number from 0 to 65535, got ${String(port)}`);
    const host = options.host ?? '127.0.0.1';
    const registry = new Registry();
    collectDefaultMetrics({ register: registry });

    new Gauge({
      name: 'sessionserver_connections',
      help: 'Clients connected now (after the TLS handshake, when TLS is on).',
      registers: [registry],
      collect() {
        this.set(server.connections.size);
      },
    });

    const tally = new CommandTally(COMMAND_BUCKETS);
    plugin.tap(server.hooks.afterCommand, (_ctx, outcome) => tally.record(outcome.command, outcome.ok, outcome.durationMs / 1000));
    new Counter({
      name: 'sessionserver_commands_total',
      help: 'Commands answered, by command and result (ok or err).',
      labelNames: ['command', 'result'] as const,
      registers: [registry],
      collect() {
        this.reset();
        for (const [command, series] of tally.entries()) {
          if (series.ok > 0) this.inc({ command, result: 'ok' }, series.ok);
          if (series.err > 0) this.inc({ command, result: 'err' }, series.err);
        }
      },
    });
    registry.registerMetric(durationHistogram('sessionserver_command_duration_seconds', 'Time from a command starting to its reply, by command.', tally));

    // Session metrics exist on a session server; a plain line server has only the above.
    const hooks = server.hooks as Partial<SessionServerHooks>;
    if (hooks.lockWait && hooks.storageError) {
      new Gauge({
        name: 'sessionserver_open_sessions',
        help: 'Sessions held open by clients now, by mode: r (read-only) or rw (writable, holding the writer lock).',
        labelNames: ['mode'] as const,
        registers: [registry],
        collect() {
          let readOnly = 0;
          let writable = 0;
          for (const connection of server.connections as Set<SessionConnection>) {
            const session = connection.session;
            if (session === null || session === undefined) continue;
            if (session.writable) writable++;
            else readOnly++;
          }
          this.set({ mode: 'r' }, readOnly);
          this.set({ mode: 'rw' }, writable);
        },
      });
      const lockWaits = new Histogram({
        name: 'sessionserver_lock_wait_seconds',
        help: 'Time writers waited for a session lock, whether they got it or timed out.',
        buckets: LOCK_WAIT_BUCKETS,
        registers: [registry],
      });
      plugin.tap(hooks.lockWait, (_ctx, event) => lockWaits.observe(event.waitedMs / 1000));
      const storageErrors = new Counter({
        name: 'sessionserver_storage_errors_total',
        help: 'Storage operations that failed (timeouts, outages, I/O errors).',
        registers: [registry],
      });
      plugin.tap(hooks.storageError, () => storageErrors.inc());
    }

    const store = (server as { store?: SessionStore }).store;
    const storageTimeout = options.storageTimeout ?? 1000;
    const probeTimeout = storageTimeout > 0 ? Math.min(storageTimeout, HEALTH_TIMEOUT_CAP_MS) : HEALTH_TIMEOUT_CAP_MS;
    const endpoint = await startMetricsEndpoint(server, {
      port,
      host,
      registry,
      healthy: store ? storeProbe(store, probeTimeout) : async () => true,
    });
    plugin.onDispose(() => endpoint.close());
    plugin.log.info({ host: endpoint.address.address, port: endpoint.address.port }, 'metrics listening');
  },
});
