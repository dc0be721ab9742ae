import { CommandError } from '../core/errors.js';

/** A writer waited the whole lock timeout without getting the session. */
export class LockTimeoutError extends CommandError {
  override readonly name = 'LockTimeoutError';
  constructor() {
    super('Session is locked', 'E_LOCKED');
  }
}

/** A lock wait ended because the waiting connection went away or the server is stopping. */
export class LockWaitAbortedError extends CommandError {
  override readonly name = 'LockWaitAbortedError';
  constructor() {
    super('Lock wait aborted', 'E_LOCK_ABORTED');
  }
}
