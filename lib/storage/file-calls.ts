import { randomBytes } from 'node:crypto';
import fs, { constants } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { StoreError } from '../core/errors.js';
import { isValidSessionId } from '../protocol/session-id.js';
import { FILE_PREFIX, TEMP_SUFFIX, type FileAnswers, type FileRequest, type NoFile, type RequestOf } from './file-requests.js';
import { writeSessionJson } from './session-file-writer.js';

// Never through a symbolic link (someone else's file), never blocking on a FIFO planted in the folder.
const OPEN_SESSION_FILE = constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK;
// A fresh temp file: never an existing name, never through a symbolic link.
const CREATE_TEMP_FILE = constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW;
const OPEN_FOLDER = constants.O_RDONLY | constants.O_DIRECTORY;
// A read moves the file's mtime only when it is older than this (or a tenth of a short own
// lifetime): the store's index has the exact access, the mtime is for the next start.
const MTIME_PRECISION_MS = 1000;

/**
 * The file format. Version 1 (no own lifetime) is written exactly as before per-session
 * lifetimes existed; version 2 adds `lifetime` (seconds), so an older server refuses such a
 * file instead of silently ignoring its lifetime.
 */
type SessionFile = { v: 1; data: Record<string, string> } | { v: 2; data: Record<string, string>; lifetime: number };

interface DecodedFile {
  data: Map<string, string>;
  lifetime: number | null;
}

/** A temp file written and still open, to be made durable (`syncTemp`) and renamed over its session file (`commit`). */
export interface PendingWrite {
  fd: number;
  temp: string;
  path: string;
}

// On the thread pool: the fsyncs of a batch overlap (a journaling filesystem commits them together).
const fsyncOnPool = promisify(fs.fsync);

/**
 * The system calls of each file request, synchronous: they run in the file worker, one whole
 * store operation per request (file-worker.ts), never on the event loop. Same calls and flags
 * as ever: O_NOFOLLOW, O_NONBLOCK, a regular-file check, O_EXCL temp files 0600 renamed over
 * the session file. `folder` is the save folder of the store that asks.
 */
export class SessionFiles {
  // Temp names are unique per worker and write (O_EXCL refuses a name that exists all the same).
  private readonly tempPrefix = randomBytes(4).toString('hex');
  private temps = 0;

  /** Runs one request other than a write (writes: `createTemp`, `syncTemp`, `commit`). */
  run(folder: string, request: Exclude<FileRequest, { op: 'write' }>): FileAnswers[FileRequest['op']] {
    switch (request.op) {
      case 'read':
        return this.read(folder, request);
      case 'touch':
        return this.touch(folder, request);
      case 'unlink':
        return unlink(pathOf(folder, request.sid));
      case 'lstat':
        return lstat(pathOf(folder, request.sid));
      case 'scan':
        return scan(folder);
      case 'list':
        return sessionNames(folder).map((name) => name.slice(FILE_PREFIX.length));
      case 'count':
        return sessionNames(folder).length;
    }
  }

  private read(folder: string, request: RequestOf<'read'>): FileAnswers['read'] {
    const path = pathOf(folder, request.sid);
    return withFile(path, (fd, info) => {
      const file = decode(readWhole(fd, info.size), path);
      // The later of the store's record and the mtime (another process's access, or the
      // kernel's coarse clock a little behind ours).
      const lastAccess = Math.max(request.lastAccess, info.mtimeMs);
      const expired = file.lifetime !== null && hasExpired(lastAccess, file.lifetime);
      if (request.mark && !expired) {
        const precision = Math.min(MTIME_PRECISION_MS, (file.lifetime ?? Infinity) * 100);
        if (Date.now() - info.mtimeMs >= precision) markAccess(fd);
      }
      return { state: 'read', lifetime: file.lifetime, mtimeMs: info.mtimeMs, expired, data: request.wantData && !expired ? file.data : null };
    });
  }

  private touch(folder: string, request: RequestOf<'touch'>): FileAnswers['touch'] {
    return withFile(pathOf(folder, request.sid), (fd, info) => {
      if (request.lifetime !== null && hasExpired(Math.max(request.lastAccess, info.mtimeMs), request.lifetime)) return { state: 'expired' };
      markAccess(fd);
      return { state: 'touched' };
    });
  }

  /** Writes the session to a fresh temp file, left open for `commit`; nothing is left behind when it fails. */
  createTemp(folder: string, request: RequestOf<'write'>): PendingWrite {
    const path = pathOf(folder, request.sid);
    const temp = `${path}.${this.tempPrefix}${(++this.temps).toString(36)}${TEMP_SUFFIX}`;
    const fd = fs.openSync(temp, CREATE_TEMP_FILE, 0o600);
    try {
      // Entry by entry, in chunks: a big session never becomes one giant string.
      writeSessionJson((buffer, offset, length) => fs.writeSync(fd, buffer, offset, length), request.data, request.lifetime);
    } catch (error) {
      abandon(fd, temp);
      throw error;
    }
    return { fd, temp, path };
  }

  /** Renames a written (and, with fsync, synced) temp file over its session file; the folder's fsync is the caller's. */
  commit(write: PendingWrite): void {
    try {
      fs.closeSync(write.fd);
      // rename replaces a symbolic link itself, never its target.
      fs.renameSync(write.temp, write.path);
    } catch (error) {
      // A write that failed half way leaves the old file in place and no temp file behind.
      removeQuietly(write.temp);
      throw error;
    }
  }
}

/** The temp file's contents reach the disk; when that fails it is closed and removed. */
export async function syncTemp(write: PendingWrite): Promise<void> {
  try {
    await fsyncOnPool(write.fd);
  } catch (error) {
    abandon(write.fd, write.temp);
    throw error;
  }
}

/** The renames done in `path` since the last call reach the disk. */
export function syncFolder(path: string): void {
  const folder = fs.openSync(path, OPEN_FOLDER);
  try {
    fs.fsyncSync(folder);
  } finally {
    fs.closeSync(folder);
  }
}

function unlink(path: string): boolean {
  try {
    fs.unlinkSync(path);
    return true;
  } catch (error) {
    if (isMissing(error)) return false;
    throw error;
  }
}

function lstat(path: string): FileAnswers['lstat'] {
  // lstat: a link's own type and age, never its target's.
  const info = fs.lstatSync(path, { throwIfNoEntry: false });
  if (!info) return { state: 'missing' };
  return info.isFile() ? { state: 'file', mtimeMs: info.mtimeMs } : { state: 'not-file' };
}

/**
 * Every session file's id and mtime (its last access), without reading contents. Temp
 * files of writes cut short by a crash go (the store runs this before its first write);
 * links and other non-files named like sessions are not sessions.
 */
function scan(folder: string): FileAnswers['scan'] {
  const ids: string[] = [];
  const mtimes: number[] = [];
  let notFiles = 0;
  for (const name of fs.readdirSync(folder)) {
    if (!name.startsWith(FILE_PREFIX)) continue;
    const path = join(folder, name);
    if (name.endsWith(TEMP_SUFFIX)) {
      try {
        fs.unlinkSync(path);
      } catch (error) {
        if (!isMissing(error)) throw error;
      }
      continue;
    }
    const id = name.slice(FILE_PREFIX.length);
    if (!isValidSessionId(id)) continue;
    const info = fs.lstatSync(path, { throwIfNoEntry: false });
    if (!info) continue;
    if (!info.isFile()) {
      notFiles++;
      continue;
    }
    ids.push(id);
    mtimes.push(info.mtimeMs);
  }
  return { ids, mtimes, notFiles };
}

/** Names of the session files in the folder (temp files and foreign names left out). */
function sessionNames(folder: string): string[] {
  return fs.readdirSync(folder).filter((name) => name.startsWith(FILE_PREFIX) && !name.endsWith(TEMP_SUFFIX) && isValidSessionId(name.slice(FILE_PREFIX.length)));
}

/** Runs `use` on the session file opened without following links; missing or not-file when there is no such plain file. */
function withFile<T>(path: string, use: (fd: number, info: fs.Stats) => T): T | NoFile {
  let fd: number;
  try {
    fd = fs.openSync(path, OPEN_SESSION_FILE);
  } catch (error) {
    if (isMissing(error)) return { state: 'missing' };
    if ((error as NodeJS.ErrnoException).code === 'ELOOP') return { state: 'not-file' };
    throw error;
  }
  try {
    const info = fs.fstatSync(fd);
    if (!info.isFile()) return { state: 'not-file' };
    return use(fd, info);
  } finally {
    fs.closeSync(fd);
  }
}

function pathOf(folder: string, sid: string): string {
  // Defence in depth: the store checked the id, but this is the line that touches the disk.
  if (!isValidSessionId(sid)) throw new StoreError('invalid session id reached the filesystem store');
  return join(folder, FILE_PREFIX + sid);
}

/** The whole file as UTF-8, read from its start; `sizeHint` (its fstat size) sizes the first read. */
function readWhole(fd: number, sizeHint: number): string {
  // One byte more than expected: a read that fills it means the file grew, read on.
  let buffer = Buffer.allocUnsafe(Math.max(sizeHint + 1, 64));
  let length = 0;
  for (;;) {
    const read = fs.readSync(fd, buffer, length, buffer.length - length, length);
    if (read === 0) return buffer.toString('utf8', 0, length);
    length += read;
    if (length === buffer.length) {
      const bigger = Buffer.allocUnsafe(buffer.length * 2);
      buffer.copy(bigger, 0, 0, length);
      buffer = bigger;
    }
  }
}

function decode(text: string, path: string): DecodedFile {
  let file: SessionFile;
  try {
    file = JSON.parse(text) as SessionFile;
  } catch {
    throw new StoreError(`corrupt session file ${path}`);
  }
  const known = file?.v === 1 || (file?.v === 2 && Number.isFinite(file.lifetime) && file.lifetime > 0);
  if (!known || typeof file.data !== 'object' || file.data === null) {
    throw new StoreError(`unreadable session file ${path}`);
  }
  const data = new Map(Object.entries(file.data).map(([key, value]) => [key, String(value)]));
  return { data, lifetime: file.v === 2 ? file.lifetime : null };
}

/** Records an access: the file's mtime is its last access. */
function markAccess(fd: number): void {
  const now = new Date();
  fs.futimesSync(fd, now, now);
}

function hasExpired(lastAccess: number, lifetimeSeconds: number): boolean {
  return Date.now() - lastAccess >= lifetimeSeconds * 1000;
}

function abandon(fd: number, temp: string): void {
  try {
    fs.closeSync(fd);
  } catch {
    // Closing is all that is left to try.
  }
  removeQuietly(temp);
}

function removeQuietly(path: string): void {
  try {
    fs.unlinkSync(path);
  } catch {
    // Gone already, or the folder is failing: a leftover temp file goes at the next start.
  }
}

export function isMissing(error: unknown): boolean {
  return (error as NodeJS.ErrnoException | undefined)?.code === 'ENOENT';
}
