import { randomBytes } from 'node:crypto';
import { constants, type Stats } from 'node:fs';
import { lstat, mkdir, open, readdir, rename, stat, unlink, type FileHandle } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { DEFAULTS } from '../config/defaults.js';
import { ConfigError, StoreError } from '../core/errors.js';
import { isValidSessionId } from '../protocol/session-id.js';
import type { SessionData, SessionExpiry, SessionStore } from './contract.js';
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
// A temp file this old belongs to a write that died with its process.
const STALE_TEMP_MS = 60 * 60 * 1000;
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

/** A session file as read: its values, own lifetime and last access (mtime). */
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
 * Per-session lifetimes live in the file. `save` keeps a session's lifetime without reading
 * the file first: this process learns every lifetime when it loads a session (the server
 * always loads before it saves) and keeps those it has seen in `lifetimes`. That is sound
 * because one process owns the folder, which the in-process writer locks require anyway.
 */
export class FilesystemStore implements SessionStore {
  readonly name = 'filesystem';
  readonly savePath: string;
  /** Bounds every operation in time (a hung disk or network mount) and reports outages. */
  readonly guard: StorageGuard;
  private readonly fsync: boolean;
  private readonly log: StorageLogger | undefined;
  /** Own lifetimes (seconds) of the sessions this process has seen with one. */
  private readonly lifetimes = new Map<string, number>();
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
    await this.removeLeftoverTemps();
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

  /** Temp files of writes cut short by a crash; no write of this process has started yet. */
  private async removeLeftoverTemps(): Promise<void> {
    for (const name of await readdir(this.savePath)) {
      if (name.startsWith(FILE_PREFIX) && name.endsWith(TEMP_SUFFIX)) await unlink(join(this.savePath, name)).catch(ignoreMissing);
    }
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
      await this.queueWrite(id, () => this.write(path, data, this.lifetimes.get(id) ?? null));
    });
  }

  private async write(path: string, data: SessionData, lifetime: number | null): Promise<void> {
    const temp = `${path}.${randomBytes(6).toString('hex')}${TEMP_SUFFIX}`;
    const handle = await open(temp, CREATE_TEMP_FILE, 0o600);
    let complete = false;
    try {
      // Entry by entry: a big session never becomes one giant string.
      await writeSessionJson(handle, data, lifetime);
      if (this.fsync) await handle.sync();
      complete = true;
    } finally {
      await handle.close();
      // A write that failed half way leaves the old file in place and no temp file behind.
      if (!complete) await unlink(temp).catch(() => {});
    }
    try {
      // rename replaces a symbolic link itself, never its target.
      await rename(temp, path);
    } catch (error) {
      await unlink(temp).catch(() => {});
      throw error;
    }
    if (this.fsync) await this.syncFolder();
  }

  destroy(id: string): Promise<boolean> {
    return this.guard.run(async () => {
      const path = this.pathOf(id);
      return this.queueWrite(id, async () => {
        this.lifetimes.delete(id);
        try {
          await unlink(path);
          return true;
        } catch (error) {
          if (isMissing(error)) return false;
          throw error;
        }
      });
    });
  }

  touch(id: string): Promise<boolean> {
    return this.guard.run(async () => {
      const path = this.pathOf(id);
      const lifetime = this.lifetimes.get(id);
      const touched = await this.withFile(path, async (handle, info) => {
        if (lifetime !== undefined && hasExpired(info.mtimeMs, lifetime)) return false;
        await markAccess(handle);
        return true;
      });
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
        if (file.lifetime === seconds) return (await this.withFile(path, async (handle) => (await markAccess(handle), true))) ?? false;
        await this.write(path, file.data, seconds);
        this.learnLifetime(id, seconds);
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
   * The decoded file, recording an access when `markRead`; undefined when missing, expired,
   * or not a plain file (a symbolic link or a FIFO someone put there is not a session).
   */
  private async read(id: string, path: string, markRead: boolean): Promise<ReadFile | undefined> {
    return this.withFile(path, async (handle, info) => {
      const file = decode(await handle.readFile('utf8'), path);
      this.learnLifetime(id, file.lifetime);
      if (file.lifetime !== null && hasExpired(info.mtimeMs, file.lifetime)) return undefined;
      if (markRead) await markAccess(handle);
      return { ...file, lastAccess: info.mtimeMs };
    });
  }

  /** Runs `use` on the session file opened without following links; undefined when there is no such plain file. */
  private async withFile<T>(path: string, use: (handle: FileHandle, info: Stats) => Promise<T>): Promise<T | undefined> {
    let handle: FileHandle;
    try {
      handle = await open(path, OPEN_SESSION_FILE);
    } catch (error) {
      if (isMissing(error)) return undefined;
      if ((error as NodeJS.ErrnoException).code === 'ELOOP') return this.refusedLink();
      throw error;
    }
    try {
      const info = await handle.stat();
      if (!info.isFile()) return this.refusedLink();
      return await use(handle, info);
    } finally {
      await handle.close();
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

  private learnLifetime(id: string, lifetime: number | null): void {
    if (lifetime === null) this.lifetimes.delete(id);
    else this.lifetimes.set(id, lifetime);
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

  /** Own lifetime of a file this process has not loaded yet, read only when `collect` must know it. */
  private async lifetimeOnDisk(id: string, path: string): Promise<number | null> {
    try {
      const lifetime = (await this.withFile(path, async (handle) => decode(await handle.readFile('utf8'), path).lifetime)) ?? null;
      this.learnLifetime(id, lifetime);
      return lifetime;
    } catch (error) {
      if (error instanceof StoreError) return null;
      throw error;
    }
  }

  collect(maxIdleMs: number, isHeld: (id: string) => boolean): Promise<number> {
    return this.guard.run(async () => {
      const now = Date.now();
      let removed = 0;
      for (const name of await readdir(this.savePath)) {
        if (!name.startsWith(FILE_PREFIX)) continue;
        const path = join(this.savePath, name);
        const isTemp = name.endsWith(TEMP_SUFFIX);
        const id = name.slice(FILE_PREFIX.length);
        if (!isTemp && (!isValidSessionId(id) || isHeld(id))) continue;
        try {
          // lstat: a link's own age, never its target's.
          const info = await lstat(path);
          if (!info.isFile()) continue;
          const idleMs = now - info.mtimeMs;
          if (isTemp) {
            if (idleMs < STALE_TEMP_MS) continue;
          } else {
            // A session's own lifetime overrides maxIdleMs, longer or shorter. One this process
            // has not seen is read only once the session is idle past maxIdleMs.
            let lifetime = this.lifetimes.get(id) ?? null;
            if (lifetime === null && idleMs >= maxIdleMs) lifetime = await this.lifetimeOnDisk(id, path);
            if (idleMs < (lifetime === null ? maxIdleMs : lifetime * 1000)) continue;
            // Re-check: a client may have opened it while we were reading the folder.
            if (isHeld(id)) continue;
          }
          await unlink(path);
          if (!isTemp) {
            this.lifetimes.delete(id);
            removed++;
          }
        } catch (error) {
          if (!isMissing(error)) throw error;
        }
      }
      return removed;
    });
  }

  count(): Promise<number> {
    return this.guard.run(async () => {
      const names = await readdir(this.savePath);
      return names.filter((name) => name.startsWith(FILE_PREFIX) && !name.endsWith(TEMP_SUFFIX)).length;
    });
  }

  async close(): Promise<void> {}

  private async syncFolder(): Promise<void> {
    const folder = await open(this.savePath, 'r');
    try {
      await folder.sync();
    } finally {
      await folder.close();
    }
  }
}

/** Records an access: the file's mtime is its last access. */
async function markAccess(handle: FileHandle): Promise<void> {
  const now = new Date();
  await handle.utimes(now, now);
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
