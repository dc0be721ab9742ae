import { constants } from 'node:buffer';
import { StoreError } from '../core/errors.js';
import type { SessionData } from './contract.js';

// Entries are gathered up to about this many characters per write: one write for a typical
// session, and never a string as long as a whole large file.
const CHUNK_CHARS = 1024 * 1024;

/**
 * The largest session file the store can read back: it reads a file as one string, and
 * decoding N bytes of UTF-8 never gives more than N characters.
 */
export const MAX_SESSION_FILE_BYTES = constants.MAX_STRING_LENGTH;

/** Where a session file is written: writes `length` bytes of `buffer` from `offset`, returns how many it wrote. */
export type SessionFileSink = (buffer: Buffer, offset: number, length: number) => number;

/**
 * Writes a session file's JSON, the text JSON.stringify would make of `{ v: 1, data }` or
 * `{ v: 2, data, lifetime }`, entry by entry: escaping can make the file several times the
 * session's size (`\u0001` for one byte), and one JSON.stringify of a big session builds a
 * string that size (or throws a RangeError past about 512 MiB). A file that would be too big
 * to read back is abandoned with a StoreError, so a write that is acknowledged is readable.
 * Synchronous: it runs in the file worker (file-worker.ts), never on the event loop.
 */
export function writeSessionJson(write: SessionFileSink, data: SessionData, lifetime: number | null, maxBytes = MAX_SESSION_FILE_BYTES): void {
  let written = 0;
  const writeAll = (text: string): void => {
    const bytes = Buffer.from(text, 'utf8');
    written += bytes.length;
    if (written > maxBytes) throw new StoreError(`session file larger than ${maxBytes} bytes, the most the filesystem store reads back`);
    // A write may write less than it was given.
    for (let offset = 0; offset < bytes.length; ) offset += write(bytes, offset, bytes.length - offset);
  };
  let pending = lifetime === null ? '{"v":1,"data":{' : '{"v":2,"data":{';
  let separator = '';
  for (const [key, value] of data) {
    const entry = `${separator}${JSON.stringify(key)}:${JSON.stringify(value)}`;
    separator = ',';
    if (pending.length + entry.length > CHUNK_CHARS) {
      writeAll(pending);
      pending = '';
    }
    pending += entry;
  }
  pending += lifetime === null ? '}}' : `},"lifetime":${JSON.stringify(lifetime)}}`;
  writeAll(pending);
}
