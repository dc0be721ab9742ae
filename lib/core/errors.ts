import { REPLY_TEXTS, replyText, type ReplyCode } from '../protocol/replies.js';

const COMMAND_ERROR = Symbol.for('sessionserver.CommandError');

/**
 * Errors a client can cause. The dispatcher turns a CommandError into `err <message>`;
 * any other exception is logged and answered with the command's generic failure text.
 * `code` is stable (see protocol/replies.ts); the message is what the client reads.
 */
export class CommandError extends Error {
  override readonly name: string = 'CommandError';
  readonly [COMMAND_ERROR] = true;
  readonly code: ReplyCode;
  constructor(message: string, code: ReplyCode = 'E_BAD_REQUEST') {
    super(message);
    this.code = code;
  }

  /** The error for a table code: `CommandError.of('E_NO_KEY')`. */
  static of(code: keyof typeof REPLY_TEXTS, values?: Record<string, string | number>): CommandError {
    return new CommandError(replyText(code, values), code);
  }
}

/**
 * True for a CommandError from any copy of this package: a command file may import
 * `sessionserver` from elsewhere than the server's own module graph, so instanceof can miss.
 */
export function isCommandError(error: unknown): error is CommandError {
  return typeof error === 'object' && error !== null && (error as Record<symbol, unknown>)[COMMAND_ERROR] === true;
}

/** A storage driver failed (I/O, network, corrupt record). Never shown to clients verbatim. */
export class StoreError extends Error {
  override readonly name = 'StoreError';
}

/** A configuration, command file or plugin is invalid; the message names the culprit. */
export class ConfigError extends Error {
  override readonly name = 'ConfigError';
}
