import { Worker } from 'node:worker_threads';
import { StoreError } from '../core/errors.js';
import type { FileAnswers, FileEnvelope, FileOp, FileReply, RequestOf, WireError } from './file-requests.js';

/** The file worker stopped (crashed, or could not start): what it was doing failed. */
export class FileWorkerStopped extends StoreError {}

interface Waiter {
  resolve(value: unknown): void;
  reject(error: Error): void;
}

interface Running {
  worker: Worker;
  /** Requests sent to this worker and not answered yet. */
  waiting: Map<number, Waiter>;
}

// Running the TypeScript sources (the tests, through tsx) or the build (dist/).
const FROM_SOURCES = import.meta.url.endsWith('.ts');

/**
 * One file worker (file-worker.ts) seen from the event loop: requests made in one turn of the
 * loop leave as one message (sent from setImmediate, after the turn's I/O callbacks), replies
 * come back as one message per batch. A worker that dies fails what it was doing with
 * FileWorkerStopped (the guard answers `err Storage unavailable`), and the next request starts
 * a new one. Idle, the worker does not keep the process alive.
 *
 * The workers are the process's, shared by all its filesystem stores (see fileThread), as
 * libuv's thread pool was: a thread costs some 60 ms to start from dist/ (500 ms through tsx),
 * too much for each store a test or an embedding app makes.
 */
export class FileThread {
  private current: Running | null = null;
  private outbox: Array<{ envelope: FileEnvelope; waiter: Waiter }> = [];
  private flushing = false;
  private nextId = 0;

  /** Sends one request of the store on `folder`; `deadline` (ms since the epoch, Infinity for none) is when the worker may skip it. */
  run<K extends FileOp>(folder: string, request: RequestOf<K>, deadline: number): Promise<FileAnswers[K]> {
    return new Promise<FileAnswers[K]>((resolve, reject) => {
      this.outbox.push({ envelope: { id: ++this.nextId, deadline, folder, request }, waiter: { resolve: resolve as (value: unknown) => void, reject } });
      if (!this.flushing) {
        this.flushing = true;
        setImmediate(this.flush);
      }
    });
  }

  private readonly flush = (): void => {
    this.flushing = false;
    const batch = this.outbox;
    this.outbox = [];
    let running: Running;
    try {
      running = this.current ?? this.start();
      // Busy, the worker keeps the process alive until it answers.
      if (running.waiting.size === 0) running.worker.ref();
      for (const { envelope, waiter } of batch) running.waiting.set(envelope.id, waiter);
      running.worker.postMessage(batch.map(({ envelope }) => envelope));
    } catch (error) {
      // A request that cannot be sent (or no worker to send it to) fails alone, never the process.
      for (const { envelope, waiter } of batch) {
        this.current?.waiting.delete(envelope.id);
        waiter.reject(new FileWorkerStopped(`the file worker could not take the request: ${(error as Error).message}`));
      }
    }
  };

  private start(): Running {
    const worker = startWorker();
    const running: Running = { worker, waiting: new Map() };
    this.current = running;
    worker.unref();
    worker.on('message', (replies: FileReply[]) => this.answer(running, replies));
    worker.on('error', (error) => this.stopped(running, error.message));
    worker.on('exit', (code) => this.stopped(running, `exit code ${code}`));
    return running;
  }

  private answer(running: Running, replies: FileReply[]): void {
    for (const reply of replies) {
      const waiter = running.waiting.get(reply.id);
      if (!waiter) continue;
      running.waiting.delete(reply.id);
      if ('error' in reply) waiter.reject(fromWire(reply.error));
      else waiter.resolve(reply.value);
    }
    if (running.waiting.size === 0) running.worker.unref();
  }

  private stopped(running: Running, reason: string): void {
    if (this.current === running) this.current = null;
    if (running.waiting.size === 0) return;
    const error = new FileWorkerStopped(`the file worker stopped (${reason})`);
    const waiters = [...running.waiting.values()];
    running.waiting.clear();
    for (const waiter of waiters) waiter.reject(error);
  }
}

let thread: FileThread | null = null;

/**
 * The process's one file worker, shared by every filesystem store. One: on 2 cores a second
 * bought no throughput and split the batches (`npm run bench -- --only=cycle`).
 */
export function fileThread(): FileThread {
  return (thread ??= new FileThread());
}

/** The file worker's name, in its thread's title (debuggers, profiles). */
export const FILE_WORKER_NAME = 'sessionserver file worker';

function startWorker(): Worker {
  if (!FROM_SOURCES) return new Worker(new URL('./file-worker.js', import.meta.url), { name: FILE_WORKER_NAME });
  // A worker does not get tsx's loader from the parent's --import (tsx issue 354): register it first.
  const tsx = JSON.stringify(import.meta.resolve('tsx/esm/api'));
  const entry = JSON.stringify(new URL('./file-worker.ts', import.meta.url).href);
  return new Worker(`import(${tsx}).then((tsx) => { tsx.register(); return import(${entry}); });`, { eval: true, name: FILE_WORKER_NAME });
}

/** The worker's error as the store's: a StoreError, or an Error with the system error's code (which the guard reads). */
function fromWire(wire: WireError): Error {
  if (wire.store) return new StoreError(wire.message);
  const error = new Error(wire.message) as NodeJS.ErrnoException;
  if (wire.code !== undefined) error.code = wire.code;
  return error;
}
