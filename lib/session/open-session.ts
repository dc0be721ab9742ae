import { CommandError } from '../core/errors.js';
import type { SessionLock } from '../locks/lock-table.js';
import type { SessionData } from '../storage/contract.js';

import type { SessionMode } from '../protocol/session-mode.js';

export type { SessionMode };

const NO_DATA: SessionData = new Map();

/**
 * A session as one connection holds it: the values it loaded plus its own uncommitted
 * changes. The loaded map is shared with the store and copied on the first write.
 */
export class OpenSession {
  id: string;
  mode: SessionMode;
  lock: SessionLock | null;
  /** Unsaved changes exist (or the session was just created and must be written). */
  dirty: boolean;
  private data: SessionData;
  private owned = false;

  constructor(id: string, mode: SessionMode, data: SessionData | undefined, lock: SessionLock | null) {
    this.id = id;
    this.mode = mode;
    this.lock = lock;
    this.data = data ?? NO_DATA;
    this.dirty = data === undefined;
  }

  get writable(): boolean {
    return this.mode !== 'r';
  }

  get(key: string): string | undefined {
    return this.data.get(key);
  }

  has(key: string): boolean {
    return this.data.has(key);
  }

  keys(): string[] {
    return [...this.data.keys()];
  }

  entries(): IterableIterator<[string, string]> {
    return this.data.entries();
  }

  get size(): number {
    return this.data.size;
  }

  put(key: string, value: string): void {
    this.writableData().set(key, value);
    this.dirty = true;
  }

  remove(key: string): boolean {
    if (!this.data.has(key)) return false;
    this.writableData().delete(key);
    this.dirty = true;
    return true;
  }

  replaceAll(values: Iterable<[string, string]>): void {
    this.assertWritable();
    this.data = new Map(values);
    this.owned = true;
    this.dirty = true;
  }

  /** The values to save. The store may keep the map, so the next write copies it first. */
  handOver(): SessionData {
    this.owned = false;
    this.dirty = false;
    return this.data;
  }

  /** Takes back values handed over for a save that failed: they are pending again. */
  restore(values: SessionData): void {
    this.data = values;
    this.owned = false;
    this.dirty = true;
  }

  private writableData(): Map<string, string> {
    this.assertWritable();
    if (!this.owned) {
      this.data = new Map(this.data);
      this.owned = true;
    }
    return this.data as Map<string, string>;
  }

  private assertWritable(): void {
    if (!this.writable) throw CommandError.of('E_READ_ONLY_SESSION');
  }
}
