import { randomBytes } from 'node:crypto';
import { mkdir, open, readdir, readFile, rename, stat, unlink, utimes } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { StoreError } from '../core/errors.js';
import { isValidSessionId } from '../protocol/session-id.js';
import type { SessionData, SessionExpiry, SessionStore } from './contract.js';

export interface FilesystemStoreOptions {
  /** Folder holding one file per session; created (mode 0700) if missing. */
  savePath: string;
  /** fsync each file and its folder before acknowledging: survives power loss, not only a crash. */
  fsync?: boolean;
}

const FILE_PREFIX = 'sess_';
const TEMP_SUFFIX = '.tmp';
// A temp file this old belongs to a write that died with its process.
const STALE_TEMP_MS = 60 * 60 * 1000;

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

/**
 * One JSON file per session, like PHP's `files` handler; the file's mtime is the last access.
 * Writes go to a temp file renamed over the old one, so a killed process leaves either the
 * old or the new session, never a torn one.
 *
 * Per-session lifetimes live in the file. `save` keeps a session's lifetime without reading
 * the file first: this process learns every lifetime when it loads a session (the server
 * always loads before it saves) and keeps those it has seen in `lifetimes`. That is sound
 * because one process owns the folder, which the in-process writer locks require anyway.
 */
export class FilesystemStore implements SessionStore {
  readonly name = 'filesystem';
  readonly savePath: string;
  private readonly fsync: boolean;
  /** Own lifetimes (seconds) of the sessions this process has seen with one. */
  private readonly lifetimes = new Map<string, number>();
  /** Per-session queue of writes, so `setLifetime`'s read-modify-write never interleaves with a save or destroy. */
  private readonly writes = new Map<string, Promise<unknown>>();

  constructor(options: FilesystemStoreOptions) {
    this.savePath = resolve(options.savePath);
    this.fsync = options.fsync ?? false;
  }

  async open(): Promise<void> {
    await mkdir(this.savePath, { recursive: true, mode: 0o700 });
  }

  private pathOf(id: string): string {
    // Defence in depth: the server validates ids, but this is the line that touches the disk.
    if (!isValidSessionId(id)) throw new StoreError('invalid session id reached the filesystem store');
    return join(this.savePath, FILE_PREFIX + id);
  }

  async load(id: string): Promise<SessionData | undefined> {
    const path = this.pathOf(id);
    const file = await this.read(id, path);
    if (!file) return undefined;
    await this.markAccess(path);
    return file.data;
  }

  async save(id: string, data: SessionData): Promise<void> {
    const path = this.pathOf(id);
    await this.queueWrite(id, () => this.write(path, data, this.lifetimes.get(id) ?? null));
  }

  private async write(path: string, data: SessionData, lifetime: number | null): Promise<void> {
    const temp = `${path}.${randomBytes(6).toString('hex')}${TEMP_SUFFIX}`;
    const values = Object.fromEntries(data);
    const file: SessionFile = lifetime === null ? { v: 1, data: values } : { v: 2, data: values, lifetime };
    const handle = await open(temp, 'w', 0o600);
    try {
      await handle.writeFile(JSON.stringify(file));
      if (this.fsync) await handle.sync();
    } finally {
      await handle.close();
    }
    try {
      await rename(temp, path);
    } catch (error) {
      await unlink(temp).catch(() => {});
      throw error;
    }
    if (this.fsync) await this.syncFolder();
  }

  async destroy(id: string): Promise<boolean> {
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
  }

  async touch(id: string): Promise<boolean> {
    const path = this.pathOf(id);
    const lifetime = this.lifetimes.get(id);
    if (lifetime !== undefined && (await this.hasExpired(path, lifetime))) return false;
    return this.markAccess(path);
  }

  async setLifetime(id: string, seconds: number | null): Promise<boolean> {
    const path = this.pathOf(id);
    return this.queueWrite(id, async () => {
      const file = await this.read(id, path);
      if (!file) return false;
      // Unchanged (an express-session touch on every request): only record the access.
      if (file.lifetime === seconds) return this.markAccess(path);
      await this.write(path, file.data, seconds);
      this.learnLifetime(id, seconds);
      return true;
    });
  }

  async expiry(id: string): Promise<SessionExpiry | undefined> {
    const path = this.pathOf(id);
    const file = await this.read(id, path);
    if (!file) return undefined;
    try {
      const { mtimeMs } = await stat(path);
      return { lifetime: file.lifetime, lastAccess: mtimeMs };
    } catch (error) {
      if (isMissing(error)) return undefined;
      throw error;
    }
  }

  async ids(): Promise<string[]> {
    const ids: string[] = [];
    for (const name of await readdir(this.savePath)) {
      if (!name.startsWith(FILE_PREFIX) || name.endsWith(TEMP_SUFFIX)) continue;
      const id = name.slice(FILE_PREFIX.length);
      if (!isValidSessionId(id)) continue;
      try {
        if (await this.read(id, join(this.savePath, name))) ids.push(id);
      } catch (error) {
        // One unreadable file must not hide the others.
        if (!(error instanceof StoreError)) throw error;
      }
    }
    return ids;
  }

  /** The decoded file without recording an access; undefined when missing or expired. */
  private async read(id: string, path: string): Promise<DecodedFile | undefined> {
    let text: string;
    try {
      text = await readFile(path, 'utf8');
    } catch (error) {
      if (isMissing(error)) return undefined;
      throw error;
    }
    const file = decode(text, path);
    this.learnLifetime(id, file.lifetime);
    if (file.lifetime !== null && (await this.hasExpired(path, file.lifetime))) return undefined;
    return file;
  }

  private learnLifetime(id: string, lifetime: number | null): void {
    if (lifetime === null) this.lifetimes.delete(id);
    else this.lifetimes.set(id, lifetime);
  }

  private async hasExpired(path: string, lifetimeSeconds: number): Promise<boolean> {
    try {
      const { mtimeMs } = await stat(path);
      return Date.now() - mtimeMs >= lifetimeSeconds * 1000;
    } catch (error) {
      if (isMissing(error)) return true;
      throw error;
    }
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
      const lifetime = decode(await readFile(path, 'utf8'), path).lifetime;
      this.learnLifetime(id, lifetime);
      return lifetime;
    } catch (error) {
      if (isMissing(error) || error instanceof StoreError) return null;
      throw error;
    }
  }

  async collect(maxIdleMs: number, isHeld: (id: string) => boolean): Promise<number> {
    const now = Date.now();
    let removed = 0;
    for (const name of await readdir(this.savePath)) {
      if (!name.startsWith(FILE_PREFIX)) continue;
      const path = join(this.savePath, name);
      const isTemp = name.endsWith(TEMP_SUFFIX);
      const id = name.slice(FILE_PREFIX.length);
      if (!isTemp && (!isValidSessionId(id) || isHeld(id))) continue;
      try {
        const { mtimeMs } = await stat(path);
        const idleMs = now - mtimeMs;
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
  }

  async count(): Promise<number> {
    const names = await readdir(this.savePath);
    return names.filter((name) => name.startsWith(FILE_PREFIX) && !name.endsWith(TEMP_SUFFIX)).length;
  }

  async close(): Promise<void> {}

  private async markAccess(path: string): Promise<boolean> {
    const now = new Date();
    try {
      await utimes(path, now, now);
      return true;
    } catch (error) {
      if (isMissing(error)) return false;
      throw error;
    }
  }

  private async syncFolder(): Promise<void> {
    const folder = await open(this.savePath, 'r');
    try {
      await folder.sync();
    } finally {
      await folder.close();
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

function isMissing(error: unknown): boolean {
  return (error as NodeJS.ErrnoException | undefined)?.code === 'ENOENT';
}
