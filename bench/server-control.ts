/**
 * The child side of a Node server under test: tells the parent its port, answers
 * `settle` (garbage-collect so RSS can be read) and `stop` (close, exit cleanly).
 */
import type { ServerControlMessage, ServerReportMessage } from './messages.js';

function report(message: ServerReportMessage): void {
  process.send?.(message);
}

const collectGarbage = (globalThis as { gc?: () => void }).gc;

async function settle(): Promise<void> {
  // Two passes and a turn of the event loop between: sockets freed in the first pass
  // release their native buffers on close callbacks, collected in the second.
  for (let pass = 0; pass < 2; pass++) {
    collectGarbage?.();
    await new Promise((resolve) => setImmediate(resolve));
  }
  report({ type: 'settled', heapUsedKiB: Math.round(process.memoryUsage().heapUsed / 1024), gcRan: collectGarbage !== undefined });
}

export function serveUnderControl(port: number, close: () => Promise<void>): void {
  process.on('message', (message: ServerControlMessage) => {
    if (message.type === 'settle') void settle();
    if (message.type === 'stop') void close().finally(() => process.exit(0));
  });
  process.on('disconnect', () => process.exit(0));
  report({ type: 'listening', port });
}
