// Loaded with --import: records every module URL the process resolves (ESM imports, and
// CommonJS packages imported from ESM), and prints them as JSON on request.
import { register } from 'node:module';
import { MessageChannel } from 'node:worker_threads';

const { port1, port2 } = new MessageChannel();
const loaded = new Set();
let flushed = null;
port1.on('message', (message) => {
  if (message === 'flushed') flushed?.();
  else loaded.add(message);
});
port1.unref();
register('./record-imports-hooks.mjs', { parentURL: import.meta.url, data: { port: port2 }, transferList: [port2] });

globalThis.__reportImports = async () => {
  // The hooks thread answers 'flushed' after every URL it posted before: one port keeps order.
  await new Promise((resolve) => {
    flushed = resolve;
    port1.ref();
    port1.postMessage('flush');
  });
  port1.unref();
  process.stdout.write(JSON.stringify([...loaded]));
};
