import { randomBytes } from 'node:crypto';

/**
 * Client-supplied ids may use letters, digits, `-`, `_` and `,` (PHP's and express-session's
 * alphabets), 1 to 128 characters. Nothing here can name a path (`/`, `.`), a Redis pattern
 * or hash tag (`*`, `?`, `[`, `{`), or smuggle a control byte.
 */
const VALID_SESSION_ID = /^[A-Za-z0-9,_-]{1,128}$/;

export function isValidSessionId(id: string): boolean {
  return VALID_SESSION_ID.test(id);
}

/** 32 lowercase hex characters, as the classic daemon made them, from a CSPRNG. */
export function newSessionId(): string {
  return randomBytes(16).toString('hex');
}
