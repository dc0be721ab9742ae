import type { LoadJob, LoadResult } from './load-generator.js';

/** What the bench's parent process and its children say to each other over IPC. */

/** Parent → load generator child. */
export interface RunLoadMessage {
  type: 'run';
  id: number;
  job: LoadJob;
}

/** Load generator child → parent. */
export type LoadReplyMessage =
  | { type: 'result'; id: number; result: LoadResult }
  | { type: 'failed'; id: number; message: string };

/** Parent → a Node server child (sessionserver or the bare server). */
export type ServerControlMessage =
  /** Run the garbage collector (when the child has --expose-gc) and answer `settled`. */
  | { type: 'settle' }
  /** Close the server and exit cleanly (a --cpu-prof profile is written on a clean exit). */
  | { type: 'stop' };

/** A Node server child → parent. */
export type ServerReportMessage =
  | { type: 'listening'; port: number }
  | { type: 'settled'; heapUsedKiB: number; gcRan: boolean };
