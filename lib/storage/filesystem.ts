import { randomBytes } from 'node:crypto';
import { mkdir, open, readdir, readFile, rename, stat, unlink, utimes } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { StoreError } from '../errors.js';
import { isValidSessionId } from '../session-id.js';
import type { SessionData, SessionStore } from './contract.js';

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

interface SessionFile {
  v: 1;
  data: Record<string, string>;
}

/**
 * One JSON file per session, like PHP's `files` handler; the file's mtime is the last access.
 * Writes go to a temp file renamed over the old one, so a killed process leaves either the
 * old or the new session, never a torn one.
 */
export class FilesystemStore implements SessionStore {
  readonly name = 'filesystem';
  readonly savePath: string;
  private readonly fsync: boolean;

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
    let text: string;
    try {
      text = await readFile(path, 'utf8');
    } catch (error) {
      if (isMissing(error)) return undefined;
      throw error;
    }
    const data = decode(text, path);
    await this.markAccess(path);
    return data;
  }

  async save(id: string, data: SessionData): Promise<void> {
    const path = this.pathOf(id);
    const temp = `${path}.${randomBytes(6).toString('hex')}${TEMP_SUFFIX}`;
    const file: SessionFile = { v: 1, data: Object.fromEntries(data) };
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
    try {
      await unlink(this.pathOf(id));
      return true;
    } catch (error) {
      if (isMissing(error)) return false;
      throw error;
    }
  }

  async touch(id: string): Promise<boolean> {
    return this.markAccess(this.pathOf(id));
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
        if (now - mtimeMs < (isTemp ? STALE_TEMP_MS : maxIdleMs)) continue;
        // Re-check: a client may have opened it while we were reading the folder.
        if (!isTemp && isHeld(id)) continue;
        await unlink(path);
        if (!isTemp) removed++;
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

function decode(text: string, path: string): SessionData {
  let file: SessionFile;
  try {
    file = JSON.parse(text) as SessionFile;
  } catch {
    throw new StoreError(`corrupt session file ${path}`);
  }
  if (file?.v !== 1 || typeof file.data !== 'object' || file.data === null) {
    throw new StoreError(`unreadable session file ${path}`);
  }
  return new Map(Object.entries(file.data).map(([key, value]) => [key, String(value)]));
}

function isMissing(error: unknown): boolean {
  return (error as NodeJS.ErrnoException | undefined)?.code === 'ENOENT';
}
