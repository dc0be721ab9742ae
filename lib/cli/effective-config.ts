import { CONFIG_KEYS, type SessionServerConfig } from '../config/config.js';
import { DEFAULTS } from '../config/defaults.js';
import { envName, givenOnCommandLine } from './flag-errors.js';

export type ConfigSource = 'flag' | 'env' | 'file' | 'default';

export interface ConfigRow {
  key: string;
  value: unknown;
  source: ConfigSource;
}

export interface ConfigLayers {
  /** yargs' parsed flags and SESSIONSERVER_* variables (camelCase keys). */
  argv: Record<string, unknown>;
  /** The raw command line, to tell a flag from a variable. */
  args: readonly string[];
  env: NodeJS.ProcessEnv;
  fileConfig: SessionServerConfig;
  /** The configuration serve would run with. */
  config: SessionServerConfig;
}

const REDACTED = '[redacted]';

/** Defaults that are not a fixed value (they depend on the machine or mean "none"). */
const DESCRIBED_DEFAULTS: Partial<Record<string, string | boolean>> = {
  fsync: false,
  listSessionIds: false,
  logLevel: 'info',
  logFormat: 'pretty on a terminal, else json',
  maxMemory: 'a quarter of the heap limit',
  postgresUrl: "pg's PG* variables",
  plugins: 'none',
  tls: 'off',
  metrics: 'off',
};

/** Keys a program sets, not a person: a logger object has no printable value. */
const NOT_SHOWN = new Set(['logger']);

/** `redis://user:secret@host` → `redis://user:[redacted]@host`. */
export function redactUrl(url: string): string {
  return url.replace(/^([a-z][a-z0-9+.-]*:\/\/[^:/@]*:)[^@]*@/i, `$1${REDACTED}@`);
}

const SECRET_KEY = /pass|token|secret|credential|^key$|^auth$/i;

/** Plugin options with every secret-looking field (and URL password) replaced. */
export function redactOptions(value: unknown): unknown {
  if (typeof value === 'string') return redactUrl(value);
  if (Array.isArray(value)) return value.map(redactOptions);
  if (typeof value !== 'object' || value === null) return value;
  return Object.fromEntries(Object.entries(value).map(([key, inner]) => [key, SECRET_KEY.test(key) ? REDACTED : redactOptions(inner)]));
}

function sourceOf(field: string, layers: ConfigLayers, fileValue: unknown): ConfigSource {
  if (layers.argv[field] !== undefined) return !givenOnCommandLine(field, layers.args) && layers.env[envName(field)] !== undefined ? 'env' : 'flag';
  return fileValue !== undefined ? 'file' : 'default';
}

function pluginRows(layers: ConfigLayers): ConfigRow[] {
  const fromFile = layers.fileConfig.plugins ?? [];
  const all = layers.config.plugins ?? [];
  const flagSource = sourceOf('plugin', layers, undefined);
  return all.map((entry, index) => {
    const [spec, options] = Array.isArray(entry) ? entry : [entry, undefined];
    const name = typeof spec === 'string' ? spec : `${(spec as { name?: string }).name ?? 'plugin object'}`;
    const source: ConfigSource = index < fromFile.length ? 'file' : spec === 'hot-reload' && layers.argv.watch && !givenPlugin(layers, 'hot-reload') ? sourceOf('watch', layers, undefined) : flagSource;
    return { key: `plugins[${index}]`, value: options === undefined ? name : `${name} ${JSON.stringify(redactOptions(options))}`, source };
  });
}

function givenPlugin(layers: ConfigLayers, name: string): boolean {
  return ((layers.argv.plugin as string[] | undefined) ?? []).includes(name);
}

function nestedRows(parent: 'tls' | 'metrics', flags: Record<string, string>, layers: ConfigLayers): ConfigRow[] {
  const value = layers.config[parent] as Record<string, unknown> | undefined;
  if (value === undefined) return [];
  const fileValue = (layers.fileConfig[parent] ?? {}) as Record<string, unknown>;
  return Object.entries(value)
    .filter(([, inner]) => inner !== undefined)
    .map(([key, inner]) => {
      const flag = flags[key];
      const source = flag !== undefined && layers.argv[flag] !== undefined ? sourceOf(flag, layers, undefined) : fileValue[key] !== undefined ? 'file' : 'default';
      return { key: `${parent}.${key}`, value: inner, source };
    });
}

/** Every setting serve would use, with where it came from; secrets redacted. */
export function effectiveConfig(layers: ConfigLayers): ConfigRow[] {
  const rows: ConfigRow[] = [];
  const defaults = DEFAULTS as Record<string, unknown>;
  for (const key of CONFIG_KEYS) {
    if (NOT_SHOWN.has(key)) continue;
    const value = layers.config[key];
    if (key === 'plugins' && value !== undefined) {
      rows.push(...pluginRows(layers));
      continue;
    }
    if (key === 'tls' && value !== undefined) {
      rows.push(...nestedRows('tls', { cert: 'tlsCert', key: 'tlsKey', ca: 'tlsCa' }, layers));
      continue;
    }
    if (key === 'metrics' && value !== undefined) {
      const metricsRows = nestedRows('metrics', { port: 'metricsPort', host: 'metricsHost' }, layers);
      if (!metricsRows.some((row) => row.key === 'metrics.host')) metricsRows.push({ key: 'metrics.host', value: DEFAULTS.metricsHost, source: 'default' });
      rows.push(...metricsRows);
      continue;
    }
    if (value === undefined) {
      rows.push({ key, value: defaults[key] ?? DESCRIBED_DEFAULTS[key] ?? 'unset', source: 'default' });
      continue;
    }
    const fileValue = layers.fileConfig[key];
    const source = value === defaults[key] && fileValue === undefined && layers.argv[key] === undefined ? 'default' : sourceOf(key, layers, fileValue);
    rows.push({ key, value: typeof value === 'string' ? redactUrl(value) : typeof value === 'object' ? `${value.constructor?.name ?? 'object'} instance` : value, source });
  }
  return rows;
}

/** `key = value  (source)` lines, values aligned. */
export function formatConfigRows(rows: readonly ConfigRow[]): string {
  const shown = rows.map((row) => ({ ...row, text: `${row.key} = ${typeof row.value === 'string' ? row.value : JSON.stringify(row.value)}` }));
  const width = Math.max(...shown.map((row) => row.text.length));
  return shown.map((row) => `${row.text.padEnd(width)}  (${row.source})`).join('\n');
}
