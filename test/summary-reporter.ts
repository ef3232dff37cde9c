/**
 * Prints one plain closing line, `Tests: N passed, N failed, N skipped`, after Vitest's own
 * summary, so tools that read a run's last lines (CI) see the counts in a common format.
 */
import type { Reporter, TestModule } from 'vitest/node';

export default class SummaryReporter implements Reporter {
  onTestRunEnd(testModules: ReadonlyArray<TestModule>): void {
    let passed = 0;
    let failed = 0;
    let skipped = 0;
    for (const mod of testModules) {
      let failedHere = 0;
      for (const test of mod.children.allTests()) {
        const state = test.result().state;
        if (state === 'passed') passed++;
        else if (state === 'failed') failedHere++;
        else skipped++;
      }
      // A file that failed to load, or whose beforeAll failed (its tests then show as skipped), is a failure.
      if (mod.state() === 'failed' && failedHere === 0) failedHere = 1;
      failed += failedHere;
    }
    // After Vitest's own summary, which it prints later in this same phase: at exit (stdout to a
    // pipe or file is synchronous on Linux, so the line is not lost).
    process.once('exit', () => process.stdout.write(`Tests: ${passed} passed, ${failed} failed, ${skipped} skipped\n`));
  }
}
