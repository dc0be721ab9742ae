import test from 'ava';
import { LockTable, MemoryStore, type SessionLock } from '../lib/index.js';
import { startServer } from './support/server.js';

/** The in-process lock table, counting the locks it has granted and not yet seen released. */
class CountingLocks extends LockTable {
  held = 0;
  override async acquire(sessionId: string, timeoutMs: number, signal?: AbortSignal): Promise<SessionLock> {
    const lock = await super.acquire(sessionId, timeoutMs, signal);
    this.held++;
    let released = false;
    return {
      sessionId,
      release: () => {
        if (!released) this.held--;
        released = true;
        return lock.release();
      },
    };
  }
}

/** A memory store whose next `destroy` fails once armed: the storage error regenerate_id must survive. */
class FailingDestroyStore extends MemoryStore {
  readonly locks = new CountingLocks();
  failNextDestroy = false;
  override async destroy(id: string): Promise<boolean> {
    if (this.failNextDestroy) {
      this.failNextDestroy = false;
      throw new Error('disk on fire');
    }
    return super.destroy(id);
  }
}

test('regenerate_id whose old session cannot be deleted keeps the session under its id and leaks no lock', async (t) => {
  const store = new FailingDestroyStore();
  const { connect } = await startServer(t, { storage: store });
  const c = await connect();
  const sid = (await c.request('new'))!.slice(3);
  t.deepEqual(await c.pipeline(['put user ada', 'commit', `open ${sid} rw`, 'put cart 2']), ['ok', 'ok', 'ok', 'ok']);
  t.is(store.locks.held, 1, 'the writer holds its lock');

  // Deleting the old id fails (after the values were saved under the new one).
  store.failNextDestroy = true;
  t.is(await c.request('regenerate_id'), 'err Could not regenerate session id.');
  t.is(store.locks.held, 1, "the new id's lock was given back; the session's own is still held");

  // Still the same session, pending value included, and still writable.
  t.deepEqual(await c.pipeline(['get user', 'get cart', 'put more 1', 'close']), ['ok ada', 'ok 2', 'ok', 'ok']);
  t.is(store.locks.held, 0, 'no lock left behind');
  t.deepEqual(await c.pipeline([`open ${sid} r`, 'keys']), ['ok', 'ok user|cart|more']);
  t.deepEqual(await store.ids(), [sid], 'the copy under the would-be new id was removed again');
});
