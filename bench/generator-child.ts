/**
 * The load generator's own process (one core for the generator, the other for the
 * server under test). It runs jobs the parent sends over IPC, one at a time.
 */
import { runLoad } from './load-generator.js';
import type { LoadReplyMessage, RunLoadMessage } from './messages.js';

function reply(message: LoadReplyMessage): void {
  process.send?.(message);
}

process.on('message', (message: RunLoadMessage) => {
  if (message.type !== 'run') return;
  runLoad(message.job).then(
    (result) => reply({ type: 'result', id: message.id, result }),
    (error: unknown) => reply({ type: 'failed', id: message.id, message: error instanceof Error ? error.message : String(error) }),
  );
});

// The parent is gone (finished, crashed or Ctrl-C): so are we.
process.on('disconnect', () => process.exit(0));
