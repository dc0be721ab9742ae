/**
 * Errors a client can cause. The dispatcher turns a CommandError into `err <message>`;
 * any other exception is logged and answered with the command's generic failure text.
 */
export class CommandError extends Error {
  override readonly name: string = 'CommandError';
  constructor(message: string) {
    super(message);
  }
}

/** A writer waited the whole lock timeout without getting the session. */
export class LockTimeoutError extends CommandError {
  override readonly name = 'LockTimeoutError';
  constructor() {
    super('Session is locked');
  }
}

/** A lock wait ended because the waiting connection went away or the server is stopping. */
export class LockWaitAbortedError extends CommandError {
  override readonly name = 'LockWaitAbortedError';
  constructor() {
    super('Lock wait aborted');
  }
}

/** A storage driver failed (I/O, network, corrupt record). Never shown to clients verbatim. */
export class StoreError extends Error {
  override readonly name = 'StoreError';
}

/** A configuration, command file or plugin is invalid; the message names the culprit. */
export class ConfigError extends Error {
  override readonly name = 'ConfigError';
}
