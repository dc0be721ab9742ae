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

/**
 * Writes a session file's JSON, the text JSON.stringify would make of `{ v: 1, data }` or
 * `{ v: 2, data, lifetime }`, entry by entry: escaping can make the file several times the
 * session's size (`\u0001` for one byte), and one JSON.stringify of a big session builds a
 * string that size (or throws a RangeError past about 512 MiB). A file that would be too big
 * to read back is abandoned with a StoreError, so a write that is acknowledged is readable.
 */
/** Where a session file is written: a FileHandle fits, or a file descriptor's write. */
export interface SessionFileSink {
  write(buffer: Buffer, offset: number, length: number): Promise<{ bytesWritten: number }>;
}

export async function writeSessionJson(handle: SessionFileSink, data: SessionData, lifetime: number | null, maxBytes = MAX_SESSION_FILE_BYTES): Promise<void> {
  let written = 0;
  const writeAll = async (text: string): Promise<void> => {
    const bytes = Buffer.from(text, 'utf8');
    written += bytes.length;
    if (written > maxBytes) throw new StoreError(`session file larger than ${maxBytes} bytes, the most the filesystem store reads back`);
    // FileHandle.write may write less than it was given.
    for (let offset = 0; offset < bytes.length; ) offset += (await handle.write(bytes, offset, bytes.length - offset)).bytesWritten;
  };
  let pending = lifetime === null ? '{"v":1,"data":{' : '{"v":2,"data":{';
  let separator = '';
  for (const [key, value] of data) {
    const entry = `${separator}${JSON.stringify(key)}:${JSON.stringify(value)}`;
    separator = ',';
    if (pending.length + entry.length > CHUNK_CHARS) {
      await writeAll(pending);
      pending = '';
    }
    pending += entry;
  }
  pending += lifetime === null ? '}}' : `},"lifetime":${JSON.stringify(lifetime)}}`;
  await writeAll(pending);
}
