import type { SessionData, SessionExpiry, SessionStore } from './contract.js';

interface MemoryRecord {
  data: SessionData;
  lastAccess: number;
  /** Own lifetime in milliseconds (`ttl`), or null for the server's max lifetime. */
  lifetimeMs: number | null;
}

function hasExpired(record: MemoryRecord, now: number): boolean {
  return record.lifetimeMs !== null && now - record.lastAccess >= record.lifetimeMs;
}

/** Sessions in this process's memory: fastest, gone on restart. */
export class MemoryStore implements SessionStore {
  readonly name = 'memory';
  private readonly sessions = new Map<string, MemoryRecord>();

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
    const record = this.sessions.get(id);
    if (record) {
      record.data = data;
      record.lastAccess = Date.now();
    } else {
      this.sessions.set(id, { data, lastAccess: Date.now(), lifetimeMs: null });
    }
  }

  async destroy(id: string): Promise<boolean> {
    return this.sessions.delete(id);
  }

  async touch(id: string): Promise<boolean> {
    const record = this.sessions.get(id);
    const now = Date.now();
    if (!record || hasExpired(record, now)) return false;
    record.lastAccess = now;
    return true;
  }

  async setLifetime(id: string, seconds: number | null): Promise<boolean> {
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
        this.sessions.delete(id);
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
