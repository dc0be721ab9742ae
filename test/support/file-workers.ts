import { Session } from 'node:inspector';
import type { ExecutionContext } from 'ava';
import { FILE_WORKER_NAME } from '../../lib/storage/file-thread.js';
import { until } from './wait.js';

interface Attached {
  sessionId: string;
  paused: boolean;
}

/**
 * The filesystem store's file workers in this test process, held through
 * the inspector's NodeWorker domain: what SIGSTOP, SIGCONT and SIGKILL are to a process. A
 * paused worker is, to the store, one stuck in a system call on a hung disk; a worker made to
 * exit while it holds requests is one that crashed. Nothing in the store is there for tests.
 *
 * The workers are the process's, shared by every store in it: a test that freezes or kills
 * them must run alone (test.serial, in a file of its own tests).
 */
export class FileWorkers {
  private readonly session = new Session();
  private readonly attached: Attached[] = [];
  private readonly replies = new Map<number, { sessionId: string; settle(reply: { error?: { message: string } }): void }>();
  private nextId = 0;

  private constructor() {}

  /** Attaches to every file worker running now and to those started later; detaches after the test. */
  static async attach(t: ExecutionContext): Promise<FileWorkers> {
    const workers = new FileWorkers();
    const { session } = workers;
    session.connect();
    t.teardown(async () => {
      // Never leave a paused worker behind for the next test.
      await workers.thaw().catch(() => {});
      session.disconnect();
    });
    session.on('NodeWorker.attachedToWorker', ({ params }) => {
      // Not the module loader's threads (tsx's hooks): only the store's, by the name it gives them.
      if (params.workerInfo.title.includes(FILE_WORKER_NAME)) workers.attached.push({ sessionId: params.sessionId, paused: false });
    });
    session.on('NodeWorker.detachedFromWorker', ({ params }) => {
      const index = workers.attached.findIndex((worker) => worker.sessionId === params.sessionId);
      if (index >= 0) workers.attached.splice(index, 1);
      // A worker that exited answers nothing more.
      for (const [id, pending] of workers.replies) {
        if (pending.sessionId !== params.sessionId) continue;
        workers.replies.delete(id);
        pending.settle({ error: { message: 'the worker exited' } });
      }
    });
    session.on('NodeWorker.receivedMessageFromWorker', ({ params }) => {
      const message = JSON.parse(params.message) as { id?: number; method?: string; error?: { message: string } };
      const worker = workers.attached.find((attached) => attached.sessionId === params.sessionId);
      if (worker && message.method === 'Debugger.paused') worker.paused = true;
      if (worker && message.method === 'Debugger.resumed') worker.paused = false;
      if (message.id === undefined) return;
      workers.replies.get(message.id)?.settle(message);
      workers.replies.delete(message.id);
    });
    await new Promise<void>((resolve, reject) => session.post('NodeWorker.enable', { waitForDebuggerOnStart: false }, (error) => (error ? reject(error) : resolve())));
    return workers;
  }

  /** File workers attached now (a worker that exits is detached). */
  get count(): number {
    return this.attached.length;
  }

  /** Every worker stops at its next line of JavaScript (the next request it receives) until `thaw`. */
  async freeze(): Promise<void> {
    if (this.attached.length === 0) throw new Error('no worker thread to freeze');
    await this.each(async (worker) => {
      await this.command(worker, 'Runtime.enable');
      await this.command(worker, 'Debugger.enable');
      await this.command(worker, 'Debugger.pause');
    });
  }

  async thaw(): Promise<void> {
    await this.each(async (worker) => {
      await this.command(worker, 'Debugger.resume').catch(() => {});
      await this.command(worker, 'Debugger.disable').catch(() => {});
    });
  }

  /**
   * Every frozen worker exits (code 1) as it resumes, dropping the requests it holds: a crash.
   * Waits until each has stopped on a request (the inspector leaves commands sent before that
   * unanswered), and resolves once they are gone.
   */
  async crash(): Promise<void> {
    const doomed = [...this.attached];
    await until(() => doomed.every((worker) => worker.paused), 'the frozen file workers have stopped on a request', 20_000);
    for (const worker of doomed) {
      // While paused the evaluation itself is refused ("cannot find context"), but the exit is under way.
      this.command(worker, 'Runtime.evaluate', { expression: 'process.exit(1)' }).catch(() => {});
      this.command(worker, 'Debugger.resume').catch(() => {});
    }
    await until(() => doomed.every((worker) => !this.attached.includes(worker)), 'the crashed file workers have exited', 20_000);
  }

  private async each(run: (worker: Attached) => Promise<void>): Promise<void> {
    await Promise.all(this.attached.map(run));
  }

  private command(worker: Attached, method: string, params: object = {}): Promise<void> {
    const id = ++this.nextId;
    return new Promise<void>((resolve, reject) => {
      this.replies.set(id, { sessionId: worker.sessionId, settle: (reply) => (reply.error ? reject(new Error(`${method}: ${reply.error.message}`)) : resolve()) });
      this.session.post('NodeWorker.sendMessageToWorker', { sessionId: worker.sessionId, message: JSON.stringify({ id, method, params }) });
    });
  }
}
