import { Writable } from 'node:stream';
import { pino, type Logger } from 'pino';

/** A real pino logger whose JSON lines the test can read back. */
export function captureLogger(level = 'debug'): { logger: Logger; lines: () => Array<Record<string, any>>; text: () => string } {
  let text = '';
  const sink = new Writable({
    write(chunk, _encoding, done) {
      text += chunk;
      done();
    },
  });
  const logger = pino({ level }, sink);
  return {
    logger,
    text: () => text,
    lines: () => text.split('\n').filter(Boolean).map((line) => JSON.parse(line)),
  };
}
