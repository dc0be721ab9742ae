import { codeOfReply, type ReplyCode } from '../protocol/replies.js';

/** The server answered `err <message>`; `message` is the server's text, verbatim. */
export class SessionServerError extends Error {
  override readonly name = 'SessionServerError';
  /** The request line's command word, e.g. `open`. */
  readonly command: string;
  /**
   * What went wrong, stable across versions: `E_LOCKED`, `E_NO_KEY`, `E_NO_SESSION`, …
   * (the server's reply table); `E_COMMAND_FAILED` for a command's own failure text.
   */
  readonly code: ReplyCode;
  constructor(message: string, command: string) {
    super(message);
    this.command = command;
    this.code = codeOfReply(message);
  }
}

/** True when `error` is the server's `err` reply with this code. */
export function isServerError(error: unknown, code: ReplyCode): error is SessionServerError {
  return error instanceof SessionServerError && error.code === code;
}

/** The connection failed, closed, or is closed by the client; the request may or may not have run. */
export class SessionConnectionError extends Error {
  override readonly name: string = 'SessionConnectionError';
  /** ECONNREFUSED, ETIMEDOUT, ECLOSED, … */
  readonly code: string;
  constructor(message: string, code: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
  }
}

/** No connection within the connect timeout, or no reply within the request timeout. The connection is dropped. */
export class SessionTimeoutError extends SessionConnectionError {
  override readonly name = 'SessionTimeoutError';
  constructor(message: string) {
    super(message, 'ETIMEDOUT');
  }
}

/**
 * The connection dropped while this client held a session: the server has released the
 * session (its writer lock is gone, other clients may have changed it since). Pending
 * requests fail with this, and so does every session command until `open` or `create`.
 */
export class SessionLostError extends SessionConnectionError {
  override readonly name = 'SessionLostError';
  /** The session that was held; null when the connection dropped while `new` was in flight. */
  readonly sessionId: string | null;
  constructor(sessionId: string | null, options?: { cause?: unknown }) {
    super(
      sessionId === null
        ? 'Connection lost while creating a session'
        : `Connection lost while holding session ${sessionId}; its lock was released`,
      'ESESSIONLOST',
      options,
    );
    this.sessionId = sessionId;
  }
}

/** The pool had no connection to lend within its acquire timeout. */
export class PoolTimeoutError extends Error {
  override readonly name = 'PoolTimeoutError';
}
