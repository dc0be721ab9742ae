import test, { type ExecutionContext } from 'ava';
import fc from 'fast-check';
import { programArbitrary, type Ending } from './support/fuzz-program.js';
import { commandWords, FUZZ_LIMITS, runProgram } from './support/fuzz-runner.js';

/*
 * Property-based protocol test: random programs of valid and invalid commands, random bytes,
 * over-long lines, random cuts of the byte stream, lines split across steps and random endings
 * (kept, dropped, half-closed), over three interleaved connections to a live server; every
 * reply is checked against a Map model of the sessions (test/support/protocol-model.ts).
 *
 * Seeded and bounded: FUZZ_SEED (default below) fixes the programs; each property stops at its
 * run count or its time budget, whichever comes first. A failure prints the seed, the path of
 * the shrunk counterexample and the command that replays exactly it. FUZZ_RUNS and FUZZ_TIME_MS
 * (per property) raise the bounds for a longer hunt.
 */
const SEED = Number(process.env.FUZZ_SEED ?? 20_240_612);
const PATH = process.env.FUZZ_PATH;
const BUDGET_MS = process.env.FUZZ_TIME_MS === undefined ? undefined : Number(process.env.FUZZ_TIME_MS);
const RUNS = process.env.FUZZ_RUNS === undefined ? undefined : Number(process.env.FUZZ_RUNS);
/** Only spent when a property fails, to shrink the counterexample. */
const SHRINK_MS = 30_000;

const words = commandWords();

async function fuzz(
  t: ExecutionContext,
  options: { storage: 'memory' | 'filesystem'; endings: readonly Ending[]; runs: number; timeMs: number; maxSteps: number },
): Promise<void> {
  const programs = programArbitrary({ commandWords: words, maxLineLength: FUZZ_LIMITS.maxLineLength, connections: 3, endings: options.endings, maxSteps: options.maxSteps });
  const property = fc.asyncProperty(programs, (program) => runProgram(program, options.storage));
  let details = await fc.check(property, {
    seed: SEED,
    ...(PATH ? { path: PATH, endOnFailure: true } : {}),
    numRuns: RUNS ?? options.runs,
    interruptAfterTimeLimit: BUDGET_MS ?? options.timeMs,
    markInterruptAsFailure: false,
  });
  t.log(`seed ${SEED}: ${details.numRuns} programs run${details.interrupted ? ' (time budget reached)' : ''}`);
  if (details.failed && !PATH && details.counterexamplePath) {
    // The search may spend its whole budget before shrinking starts: shrink on a budget of its own.
    const shrunk = await fc.check(property, { seed: SEED, path: details.counterexamplePath, interruptAfterTimeLimit: SHRINK_MS, markInterruptAsFailure: false });
    if (shrunk.failed) details = shrunk;
  }
  if (details.failed) {
    const replay = `FUZZ_SEED=${SEED} FUZZ_PATH=${details.counterexamplePath} npx ava test/fuzz-protocol.test.ts --match '${t.title}'`;
    t.fail(`${fc.defaultReportMessage(details)}\n\n${String(details.errorInstance)}\n\nReplay: ${replay}`);
    return;
  }
  t.true(details.numRuns > 0, 'at least one program ran');
}

test('random programs on three connections agree with a Map model of the sessions (memory store)', (t) =>
  fuzz(t, { storage: 'memory', endings: ['keep', 'keep', 'keep', 'drop'], runs: 400, timeMs: 8000, maxSteps: 30 }));

test('random programs agree with the model on the filesystem store', (t) =>
  fuzz(t, { storage: 'filesystem', endings: ['keep', 'keep', 'keep', 'drop'], runs: 150, timeMs: 6000, maxSteps: 20 }));

// The filesystem store's real I/O keeps commands in flight when the FIN arrives.
test('random half-closes: every line sent before the FIN is answered, then the server closes', (t) =>
  fuzz(t, { storage: 'filesystem', endings: ['keep', 'half-close'], runs: 200, timeMs: 6000, maxSteps: 15 }));
