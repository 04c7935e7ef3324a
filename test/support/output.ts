// Output of the processes a test started (the stack, agents), printed when the test fails: a failed
// wait then comes with what the processes said meanwhile instead of only "timed out".
import { beforeEach, onTestFailed } from 'vitest';

interface Captured {
  name: string;
  output: () => string;
  /** The test count when it was started: a process of an earlier test that has stopped is not shown. */
  since: number;
  stopped: boolean;
}

/** The last this many characters of each output are shown. */
const SHOW_CHARS = 20_000;
const captured: Captured[] = [];
let tests = 0;

// Registered when a test file imports test/support (files run isolated: once per file). Tools that
// reuse these helpers outside vitest (chaos/run.ts) have no test to hook into.
if (process.env.VITEST) registerFailureOutput();

function registerFailureOutput() {
  beforeEach(() => {
    const current = ++tests;
    onTestFailed(() => {
      for (const c of captured) {
        if (c.stopped && c.since < current) continue;
        const text = c.output();
        const shown = text.length > SHOW_CHARS ? `[... ${text.length - SHOW_CHARS} characters before]\n${text.slice(-SHOW_CHARS)}` : text;
        console.error(`----- output of ${c.name} -----\n${shown || '(nothing)'}\n----- end of ${c.name} -----`);
      }
    });
  });
}

/** Keeps a process's output to print if the current (or a later) test fails; call `stopped()` when it exits. */
export function captureOutput(name: string, output: () => string): { stopped(): void } {
  const c: Captured = { name, output, since: tests, stopped: false };
  captured.push(c);
  return {
    stopped() {
      c.stopped = true;
    },
  };
}
