import { getHeapStatistics } from 'node:v8';
import { CommandError } from '../core/errors.js';
import type { SessionData, SessionExpiry, SessionStore } from './contract.js';
import { checkLifetime } from './lifetime.js';
import { sessionBytes } from './session-size.js';

export interface MemoryStoreOptions {
  /**
   * Bytes of session data (UTF-8 keys and values) it may hold in all; 0 = no limit (as in
   * Redis). Default: a quarter of the V8 heap limit.
   */
  maxMemory?: number;
}

/**
 * A quarter of the heap this process may grow to: room for the copies a session has while
 * it is open, being written and being read, plus everything else the server keeps.
 */
export function defaultMaxMemory(): number {
  return Math.floor(getHeapStatistics().heap_size_limit / 4);
}

interface MemoryRecord {
  data: SessionData;
  /** UTF-8 bytes of `data`. */
  bytes: number;
  lastAccess: number;
  /** Own lifetime in milliseconds (`ttl`), or null for the server's max lifetime. */
  lifetimeMs: number | null;
}

function hasExpired(record: MemoryRecord, now: number): boolean {
  return record.lifetimeMs !== null && now - record.lastAccess >= record.lifetimeMs;
}

/**
 * Sessions in this process's memory: fastest, gone on restart. Like Redis with maxmemory
 * and noeviction, a write that would pass `maxMemory` is refused and reads go on.
 */
export class MemoryStore implements SessionStore {
  readonly name = 'memory';
  readonly maxMemory: number;
  private readonly sessions = new Map<string, MemoryRecord>();
  private used = 0;

  constructor(options: MemoryStoreOptions = {}) {
    const maxMemory = options.maxMemory ?? defaultMaxMemory();
    this.maxMemory = maxMemory === 0 ? Number.POSITIVE_INFINITY : maxMemory;
  }

  /** Bytes of session data held now. */
  get bytesUsed(): number {
    return this.used;
  }

  bytesFree(): number {
    return this.maxMemory - this.used;
  }

  async open(): Promise<void> {}

  async load(id: string): Promise<SessionData | undefined> {
    const record = this.sessions.get(id);
    const now = Date.now();
    if (!record || hasExpired(record, now)) return undefined;
    record.lastAccess = now;
    return record.data;
  }

  async save(id: string, data: SessionData): Promise<void> {
    // The caller hands the map over and copies before writing again, so no copy here.
    const bytes = sessionBytes(data);
    const record = this.sessions.get(id);
    const growth = bytes - (record?.bytes ?? 0);
    // A save that does not grow the store always succeeds: clients can still shrink or finish.
    if (growth > 0 && this.used + growth > this.maxMemory) throw CommandError.of('E_STORE_FULL');
    this.used += growth;
    if (record) {
      record.data = data;
      record.bytes = bytes;
      record.lastAccess = Date.now();
    } else {
      this.sessions.set(id, { data, bytes, lastAccess: Date.now(), lifetimeMs: null });
    }
  }

  async destroy(id: string): Promise<boolean> {
    const record = this.sessions.get(id);
    if (!record) return false;
    this.drop(id, record);
    return true;
  }

  private drop(id: string, record: MemoryRecord): void {
    this.sessions.delete(id);
    this.used -= record.bytes;
  }

  async touch(id: string): Promise<boolean> {
    const record = this.sessions.get(id);
    const now = Date.now();
    if (!record || hasExpired(record, now)) return false;
    record.lastAccess = now;
    return true;
  }

  async setLifetime(id: string, seconds: number | null): Promise<boolean> {
    checkLifetime(seconds);
    const record = this.sessions.get(id);
    const now = Date.now();
    if (!record || hasExpired(record, now)) return false;
    record.lifetimeMs = seconds === null ? null : seconds * 1000;
    record.lastAccess = now;
    return true;
  }

  async expiry(id: string): Promise<SessionExpiry | undefined> {
    const record = this.sessions.get(id);
    if (!record || hasExpired(record, Date.now())) return undefined;
    return { lifetime: record.lifetimeMs === null ? null : record.lifetimeMs / 1000, lastAccess: record.lastAccess };
  }

  async ids(): Promise<string[]> {
    const now = Date.now();
    const ids: string[] = [];
    for (const [id, record] of this.sessions) if (!hasExpired(record, now)) ids.push(id);
    return ids;
  }

  async collect(maxIdleMs: number, isHeld: (id: string) => boolean): Promise<number> {
    const now = Date.now();
    let removed = 0;
    for (const [id, record] of this.sessions) {
      const expired = record.lifetimeMs === null ? now - record.lastAccess > maxIdleMs : hasExpired(record, now);
      if (expired && !isHeld(id)) {
        this.drop(id, record);
        removed++;
      }
    }
    return removed;
  }

  async count(): Promise<number> {
    return this.sessions.size;
  }

  async close(): Promise<void> {}
}
