/**
 * Every fixed `err` text the server sends, with a stable code. The texts are binding
 * (the classic PEAR clients compare them byte for byte); the codes are what programs
 * should compare. The server throws `CommandError` with a code from here, the client's
 * `SessionServerError.code` is looked up here: nothing else matches literal texts.
 *
 * Plain data with no imports, so the client can use it without loading the server.
 */
export const REPLY_TEXTS = {
  // The line core (any server built on the framework).
  E_UNKNOWN_COMMAND: 'unknown command',
  E_TOO_MANY_UNKNOWN: 'Too many unknown commands',
  E_LINE_TOO_LONG: 'Line too long (limit {limit} bytes)',
  E_TOO_MANY_CONNECTIONS: 'Too many connections',
  E_IDLE_TIMEOUT: 'Idle timeout',
  E_HTTP_REFUSED: 'HTTP requests are not accepted on this port',
  E_SHUTTING_DOWN: 'Server is shutting down',
  E_MULTILINE_VALUE: 'Value cannot be sent on one line',
  // Sessions.
  E_NO_SESSION: 'No session opened.',
  /** `open`/`new` failed: no such session for `r`, a bad id or mode, or storage trouble. */
  E_OPEN_FAILED: 'Could not open session.',
  E_LOCKED: 'Session is locked',
  E_LOCK_ABORTED: 'Lock wait aborted',
  E_NO_KEY: 'Key does not exist',
  E_READ_ONLY_SESSION: 'Session is open read-only',
  E_SESSION_TOO_LARGE: 'Session too large (limit {limit} bytes)',
  E_STORE_FULL: 'Storage memory limit reached (maxMemory)',
  E_STORAGE_UNAVAILABLE: 'Storage unavailable',
  // Authentication (the auth plugin).
  E_AUTH_REQUIRED: 'Authentication required',
  E_AUTH_FAILED: 'Authentication failed',
  E_AUTH_THROTTLED: 'Too many failed attempts, retry later',
  E_AUTH_BUSY: 'Too many authentication attempts in progress, retry later',
  E_READ_ONLY: 'Read-only user',
  E_NOT_ALLOWED: 'Command not allowed',
} as const;

export type ReplyCode = keyof typeof REPLY_TEXTS | 'E_COMMAND_FAILED' | 'E_BAD_REQUEST';

/**
 * Codes for texts that are not in the table: a command's own failure text (`Could not
 * open session.`) is E_COMMAND_FAILED; a message naming what was wrong with the request
 * (`gc takes a whole number of seconds`) is E_BAD_REQUEST.
 */
export const GENERIC_CODES = ['E_COMMAND_FAILED', 'E_BAD_REQUEST'] as const;

/** The text for a code, with `{name}` placeholders filled in. */
export function replyText(code: keyof typeof REPLY_TEXTS, values?: Record<string, string | number>): string {
  const template: string = REPLY_TEXTS[code];
  if (!values) return template;
  return template.replace(/\{(\w+)\}/g, (_, name: string) => String(values[name] ?? `{${name}}`));
}

const exact = new Map<string, ReplyCode>();
const patterns: Array<[RegExp, ReplyCode]> = [];
for (const [code, template] of Object.entries(REPLY_TEXTS) as Array<[ReplyCode, string]>) {
  if (!template.includes('{')) exact.set(template, code);
  else patterns.push([new RegExp(`^${template.replace(/[.*+?^$()|[\]\\]/g, '\\$&').replace(/\\?\{\w+\\?\}/g, '.+')}$`), code]);
}

/** The code of an `err` text as the server sent it; E_COMMAND_FAILED for any other text. */
export function codeOfReply(text: string): ReplyCode {
  const code = exact.get(text);
  if (code !== undefined) return code;
  for (const [pattern, patternCode] of patterns) if (pattern.test(text)) return patternCode;
  return 'E_COMMAND_FAILED';
}
