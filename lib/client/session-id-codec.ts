import { isValidSessionId } from '../protocol/session-id.js';

/**
 * express-session takes whatever a custom `genid` returns (`%`, `/`, spaces, …); the server
 * takes ids of `[A-Za-z0-9,_-]{1,128}`. The store maps one onto the other, reversibly:
 *
 * - an id in the server's charset is stored under itself, so PHP and Node share plain ids;
 * - any other id is stored as `_,` followed by the base64url of its UTF-8 bytes
 *   (`a/b%c` → `_,YS9iJWM`); so is an id that itself starts with `_,`, which is what keeps
 *   the two kinds apart: no encoded id equals a plain one. PHP never makes an id with `_`,
 *   and express-session's default ids never hold `,`, so real ids do not start with `_,`.
 *
 * An encoded id must fit the 128 characters: ids needing encoding may be 94 UTF-8 bytes long.
 */
export const ENCODED_ID_PREFIX = '_,';

const MAX_ENCODED_BYTES = 94;

/** The server's id for a store id; null when the id cannot be stored (too long, or not well-formed Unicode). */
export function toServerId(id: string): string | null {
  if (isValidSessionId(id) && !id.startsWith(ENCODED_ID_PREFIX)) return id;
  const bytes = Buffer.from(id, 'utf8');
  // A lone surrogate has no UTF-8 form: it would come back as U+FFFD, another id.
  if (bytes.length > MAX_ENCODED_BYTES || bytes.toString('utf8') !== id) return null;
  return ENCODED_ID_PREFIX + bytes.toString('base64url');
}

/** The store id a server id stands for; null when no store id maps to it (a foreign id shaped like an encoded one). */
export function fromServerId(serverId: string): string | null {
  if (!serverId.startsWith(ENCODED_ID_PREFIX)) return isValidSessionId(serverId) ? serverId : null;
  const id = Buffer.from(serverId.slice(ENCODED_ID_PREFIX.length), 'base64url').toString('utf8');
  // Lenient base64 and invalid UTF-8 decode to something: only the canonical form round-trips.
  return toServerId(id) === serverId ? id : null;
}
