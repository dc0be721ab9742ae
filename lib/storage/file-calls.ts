import fs from 'node:fs';
import { promisify } from 'node:util';

/**
 * The file calls of the filesystem store, on plain file descriptors. fs/promises' FileHandle
 * costs several times more per call (an object per open file, closed through a promise) than
 * these callback calls made into promises: that difference was most of the store's cost per
 * write. Same system calls, same flags (O_NOFOLLOW, O_EXCL, O_NONBLOCK), never synchronous.
 */
export const openFile = promisify(fs.open) as (path: string, flags: number, mode?: number) => Promise<number>;
export const closeFile = promisify(fs.close);
export const fstatFile = promisify(fs.fstat) as (fd: number) => Promise<fs.Stats>;
export const lstatPath = promisify(fs.lstat) as (path: string) => Promise<fs.Stats>;
export const futimesFile = promisify(fs.futimes);
export const fsyncFile = promisify(fs.fsync);
export const renamePath = promisify(fs.rename);
export const unlinkPath = promisify(fs.unlink);
const readInto = promisify(fs.read);
const writeFrom = promisify(fs.write);

/** Writes `length` bytes of `buffer` from `offset` (once; the caller loops over short writes). */
export function writeFile(fd: number, buffer: Buffer, offset: number, length: number): Promise<{ bytesWritten: number }> {
  return writeFrom(fd, buffer, offset, length);
}

/** The whole file as UTF-8, read from its start; `sizeHint` (its fstat size) sizes the first read. */
export async function readWholeFile(fd: number, sizeHint: number): Promise<string> {
  // One byte more than expected: a read that fills it means the file grew, read on.
  let buffer = Buffer.allocUnsafe(Math.max(sizeHint + 1, 64));
  let length = 0;
  for (;;) {
    const { bytesRead: read } = await readInto(fd, buffer, length, buffer.length - length, length);
    if (read === 0) return buffer.toString('utf8', 0, length);
    length += read;
    if (length === buffer.length) {
      const bigger = Buffer.allocUnsafe(buffer.length * 2);
      buffer.copy(bigger, 0, 0, length);
      buffer = bigger;
    }
  }
}
