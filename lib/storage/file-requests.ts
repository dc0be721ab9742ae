import type { SessionData } from './contract.js';

/**
 * What the filesystem store asks of its file worker, and what it answers: one request is one
 * whole store operation on the disk (open, check, read, touch, close; or temp file, write,
 * fsync, rename), so it costs one message each way instead of a thread-pool trip per system call.
 */

export const FILE_PREFIX = 'sess_';
export const TEMP_SUFFIX = '.tmp';

export type FileRequest =
  /** The session file, decoded; its mtime moved when `mark` and it is stale. `lastAccess`: the store's record, for the expiry check. */
  | { op: 'read'; sid: string; mark: boolean; wantData: boolean; lastAccess: number }
  /** Moves the mtime, unless the session's own lifetime (the store knows it) has passed. */
  | { op: 'touch'; sid: string; lifetime: number | null; lastAccess: number }
  /** Replaces the session file (temp file, rename); with `fsync`, the file and then the folder are fsync'ed before the reply. */
  | { op: 'write'; sid: string; data: SessionData; lifetime: number | null; fsync: boolean }
  | { op: 'unlink'; sid: string }
  /** A session file's own type and mtime, never its link target's. */
  | { op: 'lstat'; sid: string }
  /** The start's scan: every session file's id and mtime; temp files of killed writes go. */
  | { op: 'scan' }
  /** The ids named in the folder. */
  | { op: 'list' }
  /** How many session files the folder holds. */
  | { op: 'count' };

export type FileOp = FileRequest['op'];
export type RequestOf<K extends FileOp> = Extract<FileRequest, { op: K }>;

/** No plain session file: none at all, or a symbolic link, FIFO or folder under its name (never followed). */
export type NoFile = { state: 'missing' } | { state: 'not-file' };

export interface FileAnswers {
  read: NoFile | { state: 'read'; lifetime: number | null; mtimeMs: number; expired: boolean; data: Map<string, string> | null };
  touch: NoFile | { state: 'touched' } | { state: 'expired' };
  write: true;
  /** false: there was no such file. */
  unlink: boolean;
  lstat: NoFile | { state: 'file'; mtimeMs: number };
  scan: { ids: string[]; mtimes: number[]; notFiles: number };
  list: string[];
  count: number;
}

/**
 * One request on its way, for the store whose save folder is `folder` (absolute; the file
 * workers serve every store of the process). `deadline` (ms since the epoch) is when its
 * client has been told `err`; past it, the worker skips the request.
 */
export interface FileEnvelope {
  id: number;
  deadline: number;
  folder: string;
  request: FileRequest;
}

/** An error crossing the thread boundary: a system error keeps its code (ENOSPC…), a StoreError is marked as one. */
export interface WireError {
  message: string;
  code?: string;
  store?: boolean;
}

export type FileReply = { id: number; value: unknown } | { id: number; error: WireError };
