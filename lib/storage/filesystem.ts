import { randomBytes } from 'node:crypto';
import { constants, type Stats } from 'node:fs';
import { mkdir, readdir, stat } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { DEFAULTS } from '../config/defaults.js';
import { ConfigError, StoreError } from '../core/errors.js';
import { isValidSessionId } from '../protocol/session-id.js';
import type { SessionData, SessionExpiry, SessionStore } from './contract.js';
import { closeFile, fstatFile, fsyncFile, futimesFile, lstatPath, openFile, readWholeFile, renamePath, unlinkPath, writeFile } from './file-calls.js';
import { SessionIndex } from './session-index.js';
import { writeSessionJson } from './session-file-writer.js';
import { isSystemError, StorageGuard, type StorageLogger } from './guard.js';
import { checkLifetime } from './lifetime.js';

export interface FilesystemStoreOptions {
  /** Folder holding one file per session; created (mode 0700) if missing. */
  savePath: string;
  /** fsync each file and its folder before acknowledging: survives power loss, not only a crash. */
  fsync?: boolean;
  /** Milliseconds one operation may take before it fails with `Storage unavailable` (`storageTimeout`); 0 waits forever. Default 1000. */
  timeout?: number;
  /** Where outages and an unsafe save folder are logged. */
  log?: StorageLogger;
}

const FILE_PREFIX = 'sess_';
const TEMP_SUFFIX = '.tmp';
// Files stat'ed at once while the start's scan learns the folder.
const SCAN_BATCH = 256;
// A read moves the file's mtime only when it is older than this (or a tenth of a short own
// lifetime): the index has the exact access, the mtime is for the next start.
const MTIME_PRECISION_MS = 1000;
// Never through a symbolic link (someone else's file), never blocking on a FIFO planted in the folder.
const OPEN_SESSION_FILE = constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK;
// A fresh temp file: never an existing name, never through a symbolic link.
const CREATE_TEMP_FILE = constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW;
const WRITABLE_BY_GROUP = 0o020;
const WRITABLE_BY_OTHERS = 0o002;
const STICKY = 0o1000;

/**
 * The file format. Version 1 (no own lifetime) is written exactly as before per-session
 * lifetimes existed; version 2 adds `lifetime` (seconds), so an older server refuses such a
 * file instead of silently ignoring its lifetime.
 */
type SessionFile = { v: 1; data: Record<string, string> } | { v: 2; data: Record<string, string>; lifetime: number };

interface DecodedFile {
  data: SessionData;
  lifetime: number | null;
}

/** A session file as read: its values, own lifetime and last access. */
interface ReadFile extends DecodedFile {
  lastAccess: number;
}


/**
 * One JSON file per session, like PHP's `files` handler; the file's mtime is the last access.
 * Writes go to a temp file renamed over the old one, so a killed process leaves either the
 * old or the new session, never a torn one.
 *
 * The folder must be this process's own: it is created 0700, a folder other users can write
 * to (without the sticky bit) is refused, session files are opened without following
 * symbolic links, and temp files of writes that died with an earlier process go at start.
 *
 * When each session was last accessed is also kept in memory (SessionIndex), learned at
 * start from one scan of the folder (names and mtimes, no contents) and kept up to date by
 * every operation since, so a gc sweep costs the sessions it deletes, not the sessions
 * stored: it looks only at those the index says are expired, and checks each file's mtime
 * before deleting it (another process on the folder may have used it). A file's mtime stays
 * its last access, so the next start knows it; a session only another process wrote is
 * swept by that process, or by this one once it has read it or restarted.
 *
 * Per-session lifetimes live in the file. `save` keeps a session's lifetime without reading
 * the file first: this process learns a lifetime when it first reads a session (the server
 * always loads before it saves) and keeps it in the index.
 */
export class FilesystemStore implements SessionStore {
  readonly name = 'filesystem';
  readonly savePath: string;
  /** Bounds every operation in time (a hung disk or network mount) and reports outages. */
  readonly guard: StorageGuard;
  private readonly fsync: boolean;
  private readonly log: StorageLogger | undefined;
  /** Every stored session, its last access and own lifetime (once read). */
  private readonly index = new SessionIndex();
  /** Session files opened since start (to read, touch or learn a lifetime). */
  filesOpened = 0;
  /** Session files a gc sweep looked at (stat'ed) since start: only those the index says are expired. */
  filesExamined = 0;
  private readonly tempPrefix = randomBytes(4).toString('hex');
  private temps = 0;
  /** Per-session queue of writes, so `setLifetime`'s read-modify-write never interleaves with a save or destroy. */
  private readonly writes = new Map<string, Promise<unknown>>();
  private warnedAboutLinks = false;

  constructor(options: FilesystemStoreOptions) {
    this.savePath = resolve(options.savePath);
    this.fsync = options.fsync ?? false;
    this.log = options.log;
    this.guard = new StorageGuard({ storage: this.name, timeoutMs: options.timeout ?? DEFAULTS.storageTimeout, log: options.log, isUnavailable: isSystemError });
  }

  async open(): Promise<void> {
    await mkdir(this.savePath, { recursive: true, mode: 0o700 });
    await this.checkFolder();
    await this.scanFolder();
  }

  /**
   * Anyone who can write to the folder can plant a session (or a link) under any id, or
   * replace one: refused, unless the sticky bit stops them from touching our files (then a
   * warning, as they can still create new ones, like PHP's default /tmp).
   */
  private async checkFolder(): Promise<void> {
    const folder = await stat(this.savePath);
    if (!folder.isDirectory()) throw new ConfigError(`savePath ${this.savePath} is not a folder`);
    const writableByOthers = (folder.mode & (WRITABLE_BY_GROUP | WRITABLE_BY_OTHERS)) !== 0;
    if (!writableByOthers) return;
    if ((folder.mode & STICKY) === 0) {
      throw new ConfigError(
        `savePath ${this.savePath} is writable by other users, who could plant or replace session files: ` +
          `make it private (chmod 700) or at least set the sticky bit (chmod +t)`,
      );
    }
    this.log?.warn({ storage: this.name, savePath: this.savePath }, 'save folder is writable by other users (sticky bit set): they can create session files; chmod 700 it');
  }

  /**
   * Learns the folder: every session file's id and mtime (its last access), without reading
   * contents. Temp files of writes cut short by a crash go (no write of this process has
   * started yet); links and other non-files named like sessions are not sessions.
   */
  private async scanFolder(): Promise<void> {
    const scannedAt = Date.now();
    const names = await readdir(this.savePath);
    const files: Array<[string, number]> = [];
    for (let start = 0; start < names.length; start += SCAN_BATCH) {
      await Promise.all(
        names.slice(start, start + SCAN_BATCH).map(async (name) => {
          if (!name.startsWith(FILE_PREFIX)) return;
          const path = join(this.savePath, name);
          if (name.endsWith(TEMP_SUFFIX)) return unlinkPath(path).catch(ignoreMissing);
          const id = name.slice(FILE_PREFIX.length);
          if (!isValidSessionId(id)) return;
          let info: Stats;
          try {
            // lstat: a link's own type, never its target's.
            info = await lstatPath(path);
          } catch (error) {
            return ignoreMissing(error);
          }
          if (info.isFile()) files.push([id, info.mtimeMs]);
          else this.refusedLink();
        }),
      );
    }
    this.index.load(files, scannedAt);
  }

  private pathOf(id: string): string {
    // Defence in depth: the server validates ids, but this is the line that touches the disk.
    if (!isValidSessionId(id)) throw new StoreError('invalid session id reached the filesystem store');
    return join(this.savePath, FILE_PREFIX + id);
  }

  load(id: string): Promise<SessionData | undefined> {
    return this.guard.run(async () => (await this.read(id, this.pathOf(id), true))?.data);
  }

  save(id: string, data: SessionData): Promise<void> {
    return this.guard.run(async () => {
      const path = this.pathOf(id);
      await this.queueWrite(id, async () => {
        const lifetime = this.index.get(id)?.lifetime ?? null;
        await this.write(path, data, lifetime);
        this.index.record(id, lifetime);
      });
    });
  }

  private async write(path: string, data: SessionData, lifetime: number | null): Promise<void> {
    // Unique per write (O_EXCL refuses a name that exists all the same).
    const temp = `${path}.${this.tempPrefix}${(++this.temps).toString(36)}${TEMP_SUFFIX}`;
    const fd = await openFile(temp, CREATE_TEMP_FILE, 0o600);
    let complete = false;
    try {
      // Entry by entry: a big session never becomes one giant string.
      await writeSessionJson({ write: (buffer, offset, length) => writeFile(fd, buffer, offset, length) }, data, lifetime);
      if (this.fsync) await fsyncFile(fd);
      complete = true;
    } finally {
      await closeFile(fd);
      // A write that failed half way leaves the old file in place and no temp file behind.
      if (!complete) await unlinkPath(temp).catch(() => {});
    }
    try {
      // rename replaces a symbolic link itself, never its target.
      await renamePath(temp, path);
    } catch (error) {
      await unlinkPath(temp).catch(() => {});
      throw error;
    }
    if (this.fsync) await this.syncFolder();
  }

  destroy(id: string): Promise<boolean> {
    return this.guard.run(async () => {
      const path = this.pathOf(id);
      return this.queueWrite(id, async () => {
        const stored = this.index.get(id);
        this.index.delete(id);
        try {
          await unlinkPath(path);
          return true;
        } catch (error) {
          if (isMissing(error)) return false;
          if (stored) this.index.record(id, stored.lifetime ?? null, stored.lastAccess);
          throw error;
        }
      });
    });
  }

  touch(id: string): Promise<boolean> {
    return this.guard.run(async () => {
      const path = this.pathOf(id);
      const entry = this.index.get(id);
      // Not known with its own lifetime (not read since start, or another process's): read it.
      if (entry?.lifetime === undefined || !entry) return (await this.read(id, path, true)) !== undefined;
      const lifetime = entry.lifetime;
      const touched = await this.withFile(path, async (fd, info) => {
        if (lifetime !== null && hasExpired(Math.max(entry.lastAccess, info.mtimeMs), lifetime)) return false;
        await markAccess(fd);
        return true;
      });
      if (touched) this.index.record(id, lifetime);
      return touched ?? false;
    });
  }

  setLifetime(id: string, seconds: number | null): Promise<boolean> {
    return this.guard.run(async () => {
      checkLifetime(seconds);
      const path = this.pathOf(id);
      return this.queueWrite(id, async () => {
        const file = await this.read(id, path, false);
        if (!file) return false;
        // Unchanged (an express-session touch on every request): only record the access.
        if (file.lifetime === seconds) {
          const touched = (await this.withFile(path, async (fd) => (await markAccess(fd), true))) ?? false;
          if (touched) this.index.record(id, seconds);
          return touched;
        }
        await this.write(path, file.data, seconds);
        this.index.record(id, seconds);
        return true;
      });
    });
  }

  expiry(id: string): Promise<SessionExpiry | undefined> {
    return this.guard.run(async () => {
      const file = await this.read(id, this.pathOf(id), false);
      return file && { lifetime: file.lifetime, lastAccess: file.lastAccess };
    });
  }

  ids(): Promise<string[]> {
    return this.guard.run(async () => {
      const ids: string[] = [];
      for (const name of await readdir(this.savePath)) {
        if (!name.startsWith(FILE_PREFIX) || name.endsWith(TEMP_SUFFIX)) continue;
        const id = name.slice(FILE_PREFIX.length);
        if (!isValidSessionId(id)) continue;
        const entry = this.index.get(id);
        // Known without an own lifetime: it exists and has not expired, no need to read it.
        if (entry && entry.lifetime === null) {
          ids.push(id);
          continue;
        }
        try {
          if (await this.read(id, join(this.savePath, name), false)) ids.push(id);
        } catch (error) {
          // One unreadable file must not hide the others.
          if (!(error instanceof StoreError)) throw error;
        }
      }
      return ids;
    });
  }

  /**
   * The decoded file and its last access, recording an access when `markRead`; undefined when
   * missing, expired, or not a plain file (a symbolic link or a FIFO someone put there is not a session).
   */
  private async read(id: string, path: string, markRead: boolean): Promise<ReadFile | undefined> {
    return this.withFile(path, async (fd, info) => {
      const file = decode(await readWholeFile(fd, info.size), path);
      this.index.learn(id, file.lifetime);
      // The later of this process's record and the mtime (another process's access, or the
      // kernel's coarse clock a little behind ours).
      const lastAccess = Math.max(this.index.get(id)?.lastAccess ?? 0, info.mtimeMs);
      if (file.lifetime !== null && hasExpired(lastAccess, file.lifetime)) return undefined;
      if (!markRead) return { ...file, lastAccess };
      const precision = Math.min(MTIME_PRECISION_MS, (file.lifetime ?? Infinity) * 100);
      if (Date.now() - info.mtimeMs >= precision) await markAccess(fd);
      this.index.record(id, file.lifetime);
      return { ...file, lastAccess: Date.now() };
    });
  }

  /** Runs `use` on the session file opened without following links; undefined when there is no such plain file. */
  private async withFile<T>(path: string, use: (fd: number, info: Stats) => Promise<T>): Promise<T | undefined> {
    let fd: number;
    this.filesOpened++;
    try {
      fd = await openFile(path, OPEN_SESSION_FILE);
    } catch (error) {
      if (isMissing(error)) return undefined;
      if ((error as NodeJS.ErrnoException).code === 'ELOOP') return this.refusedLink();
      throw error;
    }
    try {
      const info = await fstatFile(fd);
      if (!info.isFile()) return this.refusedLink();
      return await use(fd, info);
    } finally {
      await closeFile(fd);
    }
  }

  private refusedLink(): undefined {
    if (!this.warnedAboutLinks) {
      this.warnedAboutLinks = true;
      // Not the file's name: it holds a session id.
      this.log?.warn({ storage: this.name, savePath: this.savePath }, 'ignoring a session file that is a symbolic link or not a plain file');
    }
    return undefined;
  }

  private queueWrite<T>(id: string, task: () => Promise<T>): Promise<T> {
    const previous = this.writes.get(id);
    const run = previous ? previous.then(task, task) : task();
    const settled = run.then(
      () => {},
      () => {},
    );
    this.writes.set(id, settled);
    void settled.then(() => {
      if (this.writes.get(id) === settled) this.writes.delete(id);
    });
    return run;
  }

  /** Own lifetime of a file not read since start, read only when `collect` must know it; null when unreadable. */
  private async lifetimeOnDisk(id: string, path: string): Promise<number | null> {
    try {
      const lifetime = (await this.withFile(path, async (fd, info) => decode(await readWholeFile(fd, info.size), path).lifetime)) ?? null;
      this.index.learn(id, lifetime);
      return lifetime;
    } catch (error) {
      if (error instanceof StoreError) return null;
      throw error;
    }
  }

  /**
   * Deletes the sessions the index says are expired, sparing those `isHeld` names. A session's
   * own lifetime overrides maxIdleMs, longer or shorter; one not read since start is read only
   * once it is idle past maxIdleMs. Opens no file of a session that has not expired.
   */
  collect(maxIdleMs: number, isHeld: (id: string) => boolean): Promise<number> {
    return this.guard.run(async () => {
      const now = Date.now();
      let removed = 0;
      for (const id of this.index.expired(now - maxIdleMs, now)) {
        if (isHeld(id)) {
          this.index.keep(id);
          continue;
        }
        const path = this.pathOf(id);
        // Queued behind any write of the session: a save that lands first makes it fresh again.
        const gone = await this.queueWrite(id, async () => {
          let entry = this.index.get(id);
          if (!entry) return false;
          this.filesExamined++;
          let info: Stats;
          try {
            // lstat: a link's own age, never its target's. Its mtime: another process may have used it.
            info = await lstatPath(path);
          } catch (error) {
            if (!isMissing(error)) throw error;
            this.index.delete(id);
            return false;
          }
          if (!info.isFile()) return false;
          if (entry.lifetime === undefined) {
            await this.lifetimeOnDisk(id, path);
            entry = this.index.get(id)!;
          }
          const lifetime = entry.lifetime ?? null;
          const lastAccess = Math.max(entry.lastAccess, info.mtimeMs);
          const expired = now - lastAccess >= (lifetime === null ? maxIdleMs : lifetime * 1000);
          // Re-check: a client may have opened it while we looked.
          if (!expired || isHeld(id)) {
            if (lastAccess > entry.lastAccess) this.index.record(id, lifetime, lastAccess);
            else this.index.keep(id);
            return false;
          }
          this.index.delete(id);
          try {
            await unlinkPath(path);
          } catch (error) {
            if (isMissing(error)) return false;
            this.index.record(id, lifetime, entry.lastAccess);
            throw error;
          }
          return true;
        });
        if (gone) removed++;
      }
      return removed;
    });
  }

  count(): Promise<number> {
    return this.guard.run(async () => {
      // The folder, not the index: another process on the folder may have written sessions.
      const names = await readdir(this.savePath);
      return names.filter((name) => name.startsWith(FILE_PREFIX) && !name.endsWith(TEMP_SUFFIX)).length;
    });
  }

  async close(): Promise<void> {}

  private async syncFolder(): Promise<void> {
    const folder = await openFile(this.savePath, constants.O_RDONLY);
    try {
      await fsyncFile(folder);
    } finally {
      await closeFile(folder);
    }
  }
}

/** Records an access: the file's mtime is its last access. */
async function markAccess(fd: number): Promise<void> {
  const now = new Date();
  await futimesFile(fd, now, now);
}

function hasExpired(lastAccess: number, lifetimeSeconds: number): boolean {
  return Date.now() - lastAccess >= lifetimeSeconds * 1000;
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

function isMissing(error: unknown): boolean {
  return (error as NodeJS.ErrnoException | undefined)?.code === 'ENOENT';
}

function ignoreMissing(error: unknown): void {
  if (!isMissing(error)) throw error;
}
