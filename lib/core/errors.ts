const COMMAND_ERROR = Symbol.for('sessionserver.CommandError');

/**
 * Errors a client can cause. The dispatcher turns a CommandError into `err <message>`;
 * any other exception is logged and answered with the command's generic failure text.
 */
export class CommandError extends Error {
  override readonly name: string = 'CommandError';
  readonly [COMMAND_ERROR] = true;
  constructor(message: string) {
    super(message);
  }
}

/**
 * True for a CommandError from any copy of this package: a command file may import
 * `sessionserver` from elsewhere than the server's own module graph, so instanceof can miss.
 */
export function isCommandError(error: unknown): error is CommandError {
  return typeof error === 'object' && error !== null && (error as Record<symbol, unknown>)[COMMAND_ERROR] === true;
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
