import { mkdir, stat } from 'node:fs/promises';
import { resolve } from 'node:path';
import { DEFAULTS } from '../config/defaults.js';
import { ConfigError, StoreError } from '../core/errors.js';
import { isValidSessionId } from '../protocol/session-id.js';
import type { SessionData, SessionExpiry, SessionStore } from './contract.js';
import type { FileAnswers, FileOp, RequestOf } from './file-requests.js';
import { fileThread, FileWorkerStopped } from './file-thread.js';
import { SessionIndex } from './session-index.js';
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

// Reads `ids()` has in flight at once.
const LIST_BATCH = 256;
const WRITABLE_BY_GROUP = 0o020;
const WRITABLE_BY_OTHERS = 0o002;
const STICKY = 0o1000;

/** A session file as read: its values (unless not asked for), own lifetime and last access. */
interface ReadFile {
  data: SessionData | null;
  lifetime: number | null;
  lastAccess: number;
}

/**
 * One JSON file per session, like PHP's `files` handler; the file's mtime is the last access.
 * Writes go to a temp file renamed over the old one, so a killed process leaves either the
 * old or the new session, never a torn one.
 *
 * The disk is reached through a worker thread (file-thread.ts, file-worker.ts) that makes each
 * operation's system calls synchronously: one message out and one back per operation (and one
 * per batch when many clients are busy), instead of one thread-pool round trip per system call.
 * The event loop never blocks on the disk; a hung disk holds the worker, and the guard answers
 * `Storage unavailable` when storageTimeout passes.
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
  private readonly log: StorageLogger | undefined;
  /** Every stored session, its last access and own lifetime (once read). */
  private readonly index = new SessionIndex();
  /** Session files opened since start (to read, touch or learn a lifetime). */
  filesOpened = 0;
  /** Session files a gc sweep looked at (stat'ed) since start: only those the index says are expired. */
  filesExamined = 0;
  private readonly fsync: boolean;
  /** Per-session queue of writes, so `setLifetime`'s read-modify-write never interleaves with a save or destroy. */
  private readonly writes = new Map<string, Promise<unknown>>();
  private warnedAboutLinks = false;

  constructor(options: FilesystemStoreOptions) {
    this.savePath = resolve(options.savePath);
    this.log = options.log;
    this.guard = new StorageGuard({
      storage: this.name,
      timeoutMs: options.timeout ?? DEFAULTS.storageTimeout,
      log: options.log,
      isUnavailable: (error) => isSystemError(error) || error instanceof FileWorkerStopped,
    });
    this.fsync = options.fsync ?? false;
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

  /** Learns the folder: every session file's id and mtime (its last access), without reading contents; temp files of killed writes go. */
  private async scanFolder(): Promise<void> {
    const scannedAt = Date.now();
    const { ids, mtimes, notFiles } = await this.ask({ op: 'scan' }, Infinity);
    if (notFiles > 0) this.refusedLink();
    this.index.load(
      ids.map((id, i) => [id, mtimes[i]!]),
      scannedAt,
    );
  }

  /** Defence in depth: the server validates ids, but this store is what touches the disk (the worker checks again). */
  private checkId(id: string): void {
    if (!isValidSessionId(id)) throw new StoreError('invalid session id reached the filesystem store');
  }

  /**
   * When the worker may skip a request of an operation starting now: when the guard has told
   * its client `err`. A sweep (`collect`, `ids`) takes one per request instead: it goes on
   * after its client's timeout, each batch bounded, as it always did.
   */
  private deadline(): number {
    return this.guard.timeoutMs > 0 ? Date.now() + this.guard.timeoutMs : Infinity;
  }

  /** One request to the process's file worker. */
  private ask<K extends FileOp>(request: RequestOf<K>, deadline: number): Promise<FileAnswers[K]> {
    return fileThread().run(this.savePath, request, deadline);
  }

  load(id: string): Promise<SessionData | undefined> {
    return this.guard.run(async () => {
      this.checkId(id);
      return (await this.read(id, { mark: true, wantData: true }, this.deadline()))?.data ?? undefined;
    });
  }

  save(id: string, data: SessionData): Promise<void> {
    return this.guard.run(async () => {
      this.checkId(id);
      const deadline = this.deadline();
      await this.queueWrite(id, async () => {
        const lifetime = this.index.get(id)?.lifetime ?? null;
        await this.write(id, data, lifetime, deadline);
        this.index.record(id, lifetime);
      });
    });
  }

  private async write(id: string, data: SessionData, lifetime: number | null, deadline: number): Promise<void> {
    // A plain Map crosses to the worker as it is (structured clone); anything else map-like is copied into one.
    const plain = data instanceof Map ? data : new Map(data);
    await this.ask({ op: 'write', sid: id, data: plain, lifetime, fsync: this.fsync }, deadline);
  }

  destroy(id: string): Promise<boolean> {
    return this.guard.run(async () => {
      this.checkId(id);
      const deadline = this.deadline();
      return this.queueWrite(id, async () => {
        const stored = this.index.get(id);
        this.index.delete(id);
        try {
          return await this.ask({ op: 'unlink', sid: id }, deadline);
        } catch (error) {
          if (stored) this.index.record(id, stored.lifetime ?? null, stored.lastAccess);
          throw error;
        }
      });
    });
  }

  touch(id: string): Promise<boolean> {
    return this.guard.run(async () => {
      this.checkId(id);
      const deadline = this.deadline();
      const entry = this.index.get(id);
      // Not known with its own lifetime (not read since start, or another process's): read it.
      if (entry?.lifetime === undefined || !entry) return (await this.read(id, { mark: true, wantData: false }, deadline)) !== undefined;
      const lifetime = entry.lifetime;
      if (!(await this.touchFile(id, lifetime, entry.lastAccess, deadline))) return false;
      this.index.record(id, lifetime);
      return true;
    });
  }

  /** Moves the file's mtime unless its own lifetime has passed; false when it has, or there is no such plain file. */
  private async touchFile(id: string, lifetime: number | null, lastAccess: number, deadline: number): Promise<boolean> {
    this.filesOpened++;
    const answer = await this.ask({ op: 'touch', sid: id, lifetime, lastAccess }, deadline);
    if (answer.state === 'not-file') this.refusedLink();
    return answer.state === 'touched';
  }

  setLifetime(id: string, seconds: number | null): Promise<boolean> {
    return this.guard.run(async () => {
      checkLifetime(seconds);
      this.checkId(id);
      const deadline = this.deadline();
      return this.queueWrite(id, async () => {
        const file = await this.read(id, { mark: false, wantData: true }, deadline);
        if (!file) return false;
        // Unchanged (an express-session touch on every request): only record the access.
        if (file.lifetime === seconds) {
          const touched = await this.touchFile(id, seconds, file.lastAccess, deadline);
          if (touched) this.index.record(id, seconds);
          return touched;
        }
        await this.write(id, file.data!, seconds, deadline);
        this.index.record(id, seconds);
        return true;
      });
    });
  }

  expiry(id: string): Promise<SessionExpiry | undefined> {
    return this.guard.run(async () => {
      this.checkId(id);
      const file = await this.read(id, { mark: false, wantData: false }, this.deadline());
      return file && { lifetime: file.lifetime, lastAccess: file.lastAccess };
    });
  }

  ids(): Promise<string[]> {
    return this.guard.run(async () => {
      const ids: string[] = [];
      const unknown: string[] = [];
      for (const id of await this.ask({ op: 'list' }, this.deadline())) {
        const entry = this.index.get(id);
        // Known without an own lifetime: it exists and has not expired, no need to read it.
        if (entry && entry.lifetime === null) ids.push(id);
        else unknown.push(id);
      }
      for (let start = 0; start < unknown.length; start += LIST_BATCH) {
        await Promise.all(
          unknown.slice(start, start + LIST_BATCH).map(async (id) => {
            try {
              if (await this.read(id, { mark: false, wantData: false }, this.deadline())) ids.push(id);
            } catch (error) {
              // One unreadable file must not hide the others.
              if (!(error instanceof StoreError) || error instanceof FileWorkerStopped) throw error;
            }
          }),
        );
      }
      return ids;
    });
  }

  /**
   * The decoded file and its last access, recording an access when `mark`; undefined when
   * missing, expired, or not a plain file (a symbolic link or a FIFO someone put there is not a session).
   */
  private async read(id: string, want: { mark: boolean; wantData: boolean }, deadline: number): Promise<ReadFile | undefined> {
    this.filesOpened++;
    const answer = await this.ask({ op: 'read', sid: id, ...want, lastAccess: this.index.get(id)?.lastAccess ?? 0 }, deadline);
    if (answer.state === 'missing') return undefined;
    if (answer.state === 'not-file') return this.refusedLink();
    this.index.learn(id, answer.lifetime);
    if (answer.expired) return undefined;
    if (!want.mark) return { data: answer.data, lifetime: answer.lifetime, lastAccess: Math.max(this.index.get(id)?.lastAccess ?? 0, answer.mtimeMs) };
    this.index.record(id, answer.lifetime);
    return { data: answer.data, lifetime: answer.lifetime, lastAccess: Date.now() };
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

  /** Learns the own lifetime of a file not read since start, for `collect` (read without recording an access); an unreadable file keeps none. */
  private async learnLifetime(id: string, deadline: number): Promise<void> {
    try {
      await this.read(id, { mark: false, wantData: false }, deadline);
    } catch (error) {
      if (!(error instanceof StoreError) || error instanceof FileWorkerStopped) throw error;
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
        this.checkId(id);
        // Queued behind any write of the session: a save that lands first makes it fresh again.
        const gone = await this.queueWrite(id, async () => {
          let entry = this.index.get(id);
          if (!entry) return false;
          this.filesExamined++;
          // Its own type and mtime (another process may have used it), never a link target's.
          const info = await this.ask({ op: 'lstat', sid: id }, this.deadline());
          if (info.state === 'missing') {
            this.index.delete(id);
            return false;
          }
          if (info.state === 'not-file') return false;
          if (entry.lifetime === undefined) {
            await this.learnLifetime(id, this.deadline());
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
            return await this.ask({ op: 'unlink', sid: id }, this.deadline());
          } catch (error) {
            this.index.record(id, lifetime, entry.lastAccess);
            throw error;
          }
        });
        if (gone) removed++;
      }
      return removed;
    });
  }

  count(): Promise<number> {
    // The folder, not the index: another process on the folder may have written sessions.
    return this.guard.run(() => this.ask({ op: 'count' }, this.deadline()));
  }

  /** Nothing to release: the file workers are the process's, and idle they keep nothing open or alive. */
  async close(): Promise<void> {}
}
