import { StoreError } from '../core/errors.js';
import { syncFolder, syncTemp, type PendingWrite, type SessionFiles } from './file-calls.js';
import type { FileEnvelope, FileReply, WireError } from './file-requests.js';

// Requests run between two replies: bounds how long one store's burst makes another store's
// requests (or a late one of its own) wait, and how long the first write of a burst waits for its `ok`.
export const BATCH_LIMIT = 64;

/**
 * Requests the file worker has received and not run yet, one queue per save folder (per
 * store), taken in turns: a burst of one store never stalls another's requests for more than
 * a batch. Within a folder they run in the order sent; between folders order does not matter
 * (a store only touches its own folder, and waits for a reply before it sends what depends on it).
 */
export class FileQueue {
  /** In turn order: the front one goes next. */
  private readonly folders = new Map<string, FileEnvelope[]>();
  /** Served last, with requests left: to the back of the line before the next turn, behind those that arrived meanwhile. */
  private served: string | null = null;

  add(envelopes: FileEnvelope[]): void {
    for (const envelope of envelopes) {
      const queue = this.folders.get(envelope.folder);
      if (queue) queue.push(envelope);
      else this.folders.set(envelope.folder, [envelope]);
    }
  }

  /** The next batch: up to `limit` requests of the folder whose turn it is; empty when nothing is queued. */
  next(limit = BATCH_LIMIT): FileEnvelope[] {
    if (this.served !== null) {
      const queue = this.folders.get(this.served)!;
      this.folders.delete(this.served);
      this.folders.set(this.served, queue);
      this.served = null;
    }
    for (const [folder, queue] of this.folders) {
      const batch = queue.splice(0, limit);
      if (queue.length > 0) this.served = folder;
      else this.folders.delete(folder);
      return batch;
    }
    return [];
  }
}

const TOO_LATE: WireError = { code: 'ETIMEDOUT', message: 'storageTimeout passed before the file worker reached the request' };

/**
 * Runs one batch of requests, in the order they were sent, and resolves with their replies in
 * one array (one message back).
 *
 * Writes with fsync next to each other form a group commit: each is written to its temp file,
 * the temp files are fsync'ed all at once (on the thread pool, so the disk and a journaling
 * filesystem take them together), each is renamed over its session file, and each folder
 * written to is fsync'ed once at the end of the batch, before any reply leaves: every write
 * answered `ok` is on the disk, its rename too. A request whose deadline has passed (its client
 * already has `err`) is skipped: after a stall the backlog is dropped instead of written late.
 */
export async function runBatch(files: SessionFiles, batch: FileEnvelope[]): Promise<FileReply[]> {
  const replies: FileReply[] = new Array(batch.length);
  let group: Array<{ index: number; write: PendingWrite }> = [];
  // Folder → its fsync'ed writes renamed into place: `ok` only once the folder is synced.
  const renamed = new Map<string, number[]>();
  const fail = (index: number, error: unknown): void => {
    replies[index] = { id: batch[index]!.id, error: toWire(error) };
  };
  const commitGroup = async (): Promise<void> => {
    const synced = await Promise.allSettled(group.map(({ write }) => syncTemp(write)));
    for (const [n, { index, write }] of group.entries()) {
      const outcome = synced[n]!;
      if (outcome.status === 'rejected') {
        fail(index, outcome.reason);
        continue;
      }
      try {
        files.commit(write);
      } catch (error) {
        fail(index, error);
        continue;
      }
      replies[index] = { id: batch[index]!.id, value: true };
      const folder = batch[index]!.folder;
      const done = renamed.get(folder);
      if (done) done.push(index);
      else renamed.set(folder, [index]);
    }
    group = [];
  };
  for (let index = 0; index < batch.length; index++) {
    const { id, deadline, folder, request } = batch[index]!;
    if (Date.now() >= deadline) {
      replies[index] = { id, error: TOO_LATE };
      continue;
    }
    try {
      if (request.op === 'write') {
        const write = files.createTemp(folder, request);
        if (request.fsync) {
          group.push({ index, write });
          continue;
        }
        files.commit(write);
        replies[index] = { id, value: true };
        continue;
      }
      // A read after a write of the same batch sees it.
      if (group.length > 0) await commitGroup();
      replies[index] = { id, value: files.run(folder, request) };
    } catch (error) {
      fail(index, error);
    }
  }
  if (group.length > 0) await commitGroup();
  for (const [folder, indexes] of renamed) {
    try {
      syncFolder(folder);
    } catch (error) {
      // Renamed, maybe not durable: the client hears err (the write may still be there, as after any timeout).
      for (const index of indexes) fail(index, error);
    }
  }
  return replies;
}

/** An error as it can cross to the store's thread (an Error's own fields do not survive structured cloning). */
export function toWire(error: unknown): WireError {
  if (error instanceof StoreError) return { message: error.message, store: true };
  const code = (error as NodeJS.ErrnoException | null)?.code;
  const message = error instanceof Error ? error.message : String(error);
  return typeof code === 'string' ? { message, code } : { message };
}
