import { createRequire } from 'node:module';
import { pino, type Logger } from 'pino';

export type LogFormat = 'json' | 'pretty';

export const LOG_FORMATS: readonly LogFormat[] = ['json', 'pretty'];

export interface LoggerOptions {
  logLevel?: string;
  /** `pretty` (coloured lines) or `json`; default pretty when stdout is a terminal, else json. */
  logFormat?: LogFormat;
}

/** The format used when none is asked for: people read terminals, programs read pipes and files. */
export function defaultLogFormat(stdoutIsTerminal = process.stdout.isTTY === true): LogFormat {
  return stdoutIsTerminal ? 'pretty' : 'json';
}

/** The server's logger on stdout: JSON lines, or pino-pretty's coloured lines for people. */
export function createLogger(options: LoggerOptions = {}): Logger {
  const settings = { name: 'sessionserver', level: options.logLevel ?? 'info' };
  // Synchronous writes: the last lines before process.exit() (shutdown, a fatal error) are
  // neither lost nor reordered, which an asynchronous destination cannot promise.
  const out = pino.destination({ dest: 1, sync: true });
  if ((options.logFormat ?? defaultLogFormat()) === 'json') return pino(settings, out);
  // Loaded only when asked for: JSON deployments never pay for it.
  const { prettyFactory, isColorSupported } = createRequire(import.meta.url)('pino-pretty') as typeof import('pino-pretty');
  // Colours for a terminal only (or FORCE_COLOR): escape codes do not belong in a log file.
  const colorize = isColorSupported && (process.stdout.isTTY === true || 'FORCE_COLOR' in process.env);
  // Formatted in this thread (no transport worker), so lines keep their order.
  const pretty = prettyFactory({ colorize, ignore: 'pid,hostname', translateTime: 'SYS:HH:MM:ss.l' });
  return pino(settings, { write: (line: string) => out.write(pretty(line)) });
}
