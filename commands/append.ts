// append <key> <text>: appends to a value (missing = empty) and replies the new length in bytes.
import { defineSessionCommand } from 'sessionserver';

export default defineSessionCommand({
  name: 'append',
  usage: 'append <key> <text>',
  summary: 'append text to a value; replies its new length in bytes',
  session: 'write',
  failure: 'Could not append value',
  run(ctx, key, text) {
    const session = ctx.openSession;
    const next = (session.get(key) ?? '') + text;
    session.put(key, next);
    return String(Buffer.byteLength(next));
  },
});
