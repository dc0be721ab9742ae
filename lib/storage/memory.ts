import type { SessionData, SessionStore } from './contract.js';

interface MemoryRecord {
  data: SessionData;
  lastAccess: number;
}

/** Sessions in this process's memory: fastest, gone on restart. */
export class MemoryStore implements SessionStore {
  readonly name = 'memory';
  private readonly sessions = new Map<string, MemoryRecord>();

  async open(): Promise<void> {}

  async load(id: string): Promise<SessionData | undefined> {
    const record = this.sessions.get(id);
    if (!record) return undefined;
    record.lastAccess = Date.now();
    return record.data;
  }

  async save(id: string, data: SessionData): Promise<void> {
    // The caller hands the map over and copies before writing again, so no copy here.
    this.sessions.set(id, { data, lastAccess: Date.now() });
  }

  async destroy(id: string): Promise<boolean> {
    return this.sessions.delete(id);
  }

  async touch(id: string): Promise<boolean> {
    const record = this.sessions.get(id);
    if (!record) return false;
    record.lastAccess = Date.now();
    return true;
  }

  async collect(maxIdleMs: number, isHeld: (id: string) => boolean): Promise<number> {
    const cutoff = Date.now() - maxIdleMs;
    let removed = 0;
    for (const [id, record] of this.sessions) {
      if (record.lastAccess < cutoff && !isHeld(id)) {
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
