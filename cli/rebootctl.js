#!/usr/bin/env node
// rebootctl: a plain JS shim so `npx rebootctl` works; the CLI itself is TypeScript run by Node 24.
import('./main.ts').catch((err) => {
  console.error(err?.stack ?? String(err));
  process.exit(1);
});
