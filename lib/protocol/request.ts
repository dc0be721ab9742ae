/** One request line split as the classic protocol splits it. */
export interface Request {
  /** The command word, lower-cased for routing. */
  readonly word: string;
  /** The first argument; the empty string when missing. */
  readonly arg1: string;
  /** The rest of the line after the first argument, spaces included; the empty string when missing. */
  readonly arg2: string;
}

// PHP's trim() set: the classic daemon trimmed with it, so values keep any other whitespace.
// All of it is ASCII, as is the space that splits a line: in UTF-8 those bytes never occur
// inside a character, and a decoder never swallows them into a bad sequence, so a line may be
// trimmed and split on its bytes (char codes and bytes are the same numbers here) and each
// part decoded alone, with the same text as splitting the decoded line.
export function isTrimmable(code: number): boolean {
  return code === 32 || code === 9 || code === 10 || code === 13 || code === 0 || code === 11;
}

export function trimLine(line: string): string {
  let start = 0;
  let end = line.length;
  while (start < end && isTrimmable(line.charCodeAt(start))) start++;
  while (end > start && isTrimmable(line.charCodeAt(end - 1))) end--;
  return start === 0 && end === line.length ? line : line.slice(start, end);
}

/** Splits on single spaces into at most three parts: `put  data` is (put, "", data). */
export function parseRequest(rawLine: string): Request {
  const line = trimLine(rawLine);
  const firstSpace = line.indexOf(' ');
  if (firstSpace === -1) return { word: line.toLowerCase(), arg1: '', arg2: '' };
  const word = line.slice(0, firstSpace).toLowerCase();
  const secondSpace = line.indexOf(' ', firstSpace + 1);
  if (secondSpace === -1) return { word, arg1: line.slice(firstSpace + 1), arg2: '' };
  return { word, arg1: line.slice(firstSpace + 1, secondSpace), arg2: line.slice(secondSpace + 1) };
}

/**
 * The text after the command word, for commands whose single argument may hold spaces
 * (`put_all`). After trimming, a present second part is never empty, so this is exact.
 */
export function restOfLine(arg1: string, arg2: string): string {
  return arg2 === '' ? arg1 : `${arg1} ${arg2}`;
}

/** A browser's (or any HTTP client's) request line: refused so web pages cannot drive the server. */
const HTTP_REQUEST_LINE = /^[A-Z]+ \S+ HTTP\/\d(\.\d)?$/;

export function isHttpRequestLine(line: string): boolean {
  return HTTP_REQUEST_LINE.test(trimLine(line));
}
