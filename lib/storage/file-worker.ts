import { parentPort, receiveMessageOnPort } from 'node:worker_threads';
import { FileQueue, runBatch } from './file-batch.js';
import { SessionFiles } from './file-calls.js';
import type { FileEnvelope } from './file-requests.js';

/**
 * The filesystem stores' file worker (a worker thread, started by file-thread.ts): it makes
 * the system calls of each request synchronously, so a whole store operation costs one
 * message each way. What is waiting when it wakes runs in batches (file-batch.ts), one reply
 * message each; messages that arrive meanwhile join the queue between two batches.
 */
if (!parentPort) throw new Error('file-worker.js runs as a worker thread of the filesystem store');
const port = parentPort;
const files = new SessionFiles();
const queue = new FileQueue();

/** Queues every message waiting on the port (sent while a batch ran): their writes can share a folder fsync. */
function receiveWaiting(): void {
  for (let more = receiveMessageOnPort(port); more; more = receiveMessageOnPort(port)) queue.add(more.message as FileEnvelope[]);
}

let draining = false;

port.on('message', (first: FileEnvelope[]) => {
  queue.add(first);
  if (!draining) void drain();
});

/** Runs batches until nothing is queued; one at a time (a batch with fsync waits for the disk). */
async function drain(): Promise<void> {
  draining = true;
  receiveWaiting();
  for (let batch = queue.next(); batch.length > 0; batch = queue.next()) {
    port.postMessage(await runBatch(files, batch));
    receiveWaiting();
  }
  draining = false;
}
