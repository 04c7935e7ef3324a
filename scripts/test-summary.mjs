// Prints the suite's closing line in the plain form CI reads ("N passed, N failed"), from vitest's JSON report.
import { readFileSync } from 'node:fs';

const report = JSON.parse(readFileSync(new URL('../.test-tmp/vitest.json', import.meta.url), 'utf8'));
const skipped = (report.numPendingTests ?? 0) + (report.numTodoTests ?? 0);
console.log(`tests: ${report.numPassedTests} passed, ${report.numFailedTests} failed${skipped ? `, ${skipped} skipped` : ''}`);
process.exit(report.numFailedTests > 0 || report.numTotalTests === 0 ? 1 : 0);
