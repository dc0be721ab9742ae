// incr <key> [by]: adds an integer to a value (missing = 0) and replies the new value.
// Atomic for the session's writer: no read-modify-write round trips from the client.
import { CommandError, defineSessionCommand } from 'sessionserver';

const INTEGER = /^-?\d{1,15}$/;

export default defineSessionCommand({
  name: 'incr',
  usage: 'incr <key> [by]',
  summary: 'add an integer (default 1) to a value and reply the result',
  session: 'write',
  failure: 'Could not increment value',
  run(ctx, key, by) {
    const session = ctx.openSession;
    const current = session.get(key) ?? '0';
    const step = by === '' ? '1' : by;
    if (!INTEGER.test(current)) throw new CommandError('Value is not an integer');
    if (!INTEGER.test(step)) throw new CommandError('Increment is not an integer');
    const next = String(Number(current) + Number(step));
    session.put(key, next);
    return next;
  },
});
