/**
 * Counting replies in a byte stream, as cheaply as possible: the load generator must
 * never be the bottleneck. Each parser returns how many replies a chunk completed and
 * counts the failed ones, so a benchmark that silently measures error replies shows up.
 */
export interface ReplyParser {
  /** Replies completed by this chunk (chunks may split a reply anywhere). */
  feed(chunk: Buffer): number;
  /** Replies that were failures (`err …` lines, RESP `-ERR …`). */
  readonly errors: number;
}

const LF = 10;
const CR = 13;

/** Line protocols (sessionserver, the bare server): one reply per LF; `e…` starts an error. */
export class LineReplyParser implements ReplyParser {
  errors = 0;
  private atLineStart = true;
  private readonly errorFirstByte: number;

  constructor(errorPrefix = 'err') {
    this.errorFirstByte = errorPrefix.charCodeAt(0);
  }

  feed(chunk: Buffer): number {
    let replies = 0;
    let start = 0;
    const length = chunk.length;
    while (start < length) {
      if (this.atLineStart && chunk[start] === this.errorFirstByte) this.errors++;
      const lf = chunk.indexOf(LF, start);
      if (lf === -1) {
        this.atLineStart = false;
        break;
      }
      replies++;
      this.atLineStart = true;
      start = lf + 1;
    }
    return replies;
  }
}

const PLUS = 43; // +
const MINUS = 45; // -
const COLON = 58; // :
const DOLLAR = 36; // $
const DIGIT_0 = 48;

/**
 * RESP replies to inline commands: `+OK`, `-ERR …`, `:n`, `$n\r\n<n bytes>\r\n` and
 * `$-1` (nil). Bulk bodies are skipped by length, so values may hold any bytes.
 * Arrays never answer SET/GET and are rejected rather than miscounted.
 */
export class RespReplyParser implements ReplyParser {
  errors = 0;
  /** A header line split across chunks, kept until its LF arrives. */
  private carry: Buffer | null = null;
  /** Bulk body bytes (including its CRLF) still to skip. */
  private bulkRemaining = 0;

  feed(input: Buffer): number {
    let chunk = input;
    if (this.carry) {
      chunk = Buffer.concat([this.carry, input]);
      this.carry = null;
    }
    let replies = 0;
    let pos = 0;
    const length = chunk.length;
    while (pos < length) {
      if (this.bulkRemaining > 0) {
        const take = Math.min(this.bulkRemaining, length - pos);
        pos += take;
        this.bulkRemaining -= take;
        if (this.bulkRemaining === 0) replies++;
        continue;
      }
      const lf = chunk.indexOf(LF, pos);
      if (lf === -1) {
        this.carry = Buffer.from(chunk.subarray(pos));
        break;
      }
      const type = chunk[pos];
      if (type === PLUS || type === COLON) {
        replies++;
      } else if (type === MINUS) {
        this.errors++;
        replies++;
      } else if (type === DOLLAR) {
        const bulkLength = parseLength(chunk, pos + 1, lf);
        if (bulkLength < 0) replies++;
        else this.bulkRemaining = bulkLength + 2;
        // A zero-length bulk (`$0\r\n\r\n`) still has its CRLF to skip: counted when skipped.
      } else {
        throw new Error(`unexpected RESP reply type ${JSON.stringify(String.fromCharCode(type ?? 0))}`);
      }
      pos = lf + 1;
    }
    return replies;
  }
}

/** The decimal length of a `$` header, from `start` up to the CR (or LF) at `end`. */
function parseLength(chunk: Buffer, start: number, end: number): number {
  let stop = end;
  if (stop > start && chunk[stop - 1] === CR) stop--;
  let negative = false;
  let i = start;
  if (chunk[i] === MINUS) {
    negative = true;
    i++;
  }
  let value = 0;
  for (; i < stop; i++) value = value * 10 + (chunk[i]! - DIGIT_0);
  return negative ? -value : value;
}
