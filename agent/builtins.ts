// Node built-ins for the long-running daemon, taken without ES module namespaces (the idle agent's RSS, issue 19).

/**
 * `import { x } from 'node:fs'` builds the module's namespace, which reads every export, lazy
 * getters included: `fs.promises` loads fs/promises and its streams, `node:module` loads readline
 * and the REPL history. About 2 MB the idle daemon never uses. getBuiltinModule returns the plain
 * object (agent/http.ts does the same for node:http).
 */
export const fs = process.getBuiltinModule('node:fs');

/**
 * child_process (with dgram, which it requires for handle passing) is loaded at the first spawn: for
 * the daemon that is the warm gate at start (warm-gate.ts); `rebootctl` commands that never spawn
 * do not load it.
 */
export const spawn: typeof import('node:child_process').spawn = ((...args: unknown[]) =>
  (process.getBuiltinModule('node:child_process').spawn as (...a: unknown[]) => unknown)(...args)) as never;
