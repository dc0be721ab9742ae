import type { ChildProcess } from 'node:child_process';
import { forkBenchScript, nextMessage, stopWithin } from './children.js';
import type { LoadJob, LoadResult } from './load-generator.js';
import type { LoadReplyMessage, RunLoadMessage } from './messages.js';

/** The parent's handle on the load generator child: send a job, get its result. */
export class RemoteLoadGenerator {
  private nextId = 1;

  private constructor(private readonly child: ChildProcess) {}

  static start(): RemoteLoadGenerator {
    return new RemoteLoadGenerator(forkBenchScript('generator-child.ts'));
  }

  async run(job: LoadJob): Promise<LoadResult> {
    const id = this.nextId++;
    const message: RunLoadMessage = { type: 'run', id, job };
    const reply = nextMessage(
      this.child,
      (m: LoadReplyMessage | undefined): m is LoadReplyMessage => (m?.type === 'result' || m?.type === 'failed') && m.id === id,
      job.warmupMs + job.durationMs + 30_000,
      'load generator',
    );
    this.child.send(message);
    const answer = await reply;
    if (answer.type === 'failed') throw new Error(`load generator: ${answer.message}`);
    return answer.result;
  }

  stop(): Promise<void> {
    return stopWithin(this.child, 2000, () => this.child.disconnect());
  }
}
