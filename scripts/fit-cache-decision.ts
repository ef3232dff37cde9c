/**
 * `npm run fit:cache-decision [-- <qqp.jsonl>] [--check]`: fits the semantic cache's decision
 * (src/cache/decision.ts) on labelled question pairs and writes src/cache/decision-model.ts:
 * the trees, the IDF table and the thresholds chosen by 5-fold cross-validation by question text
 * (method: scripts/fit-cache-decision.lib.ts). Deterministic: the same data gives the same file.
 *
 * Data: ../shared/data/qqp-dev.jsonl from the repository root (override: first argument, or
 * TOLLGATE_QQP_DATA). `--check`: writes nothing; exit code 1 when the shipped file differs from
 * what this data produces.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { dirname, isAbsolute, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { fitDecision, modelSource, readLabelled, TARGET_PRECISION } from './fit-cache-decision.lib.js';

const ROOT = dirname(dirname(fileURLToPath(import.meta.url)));
export const MODEL_FILE = join(ROOT, 'src', 'cache', 'decision-model.ts');

const pct = (x: number) => `${(100 * x).toFixed(1)}%`;

function main(): number {
  const args = process.argv.slice(2);
  const check = args.includes('--check');
  const given = args.find((a) => !a.startsWith('--')) ?? process.env.TOLLGATE_QQP_DATA;
  const file = given ? (isAbsolute(given) ? given : resolve(process.cwd(), given)) : join(ROOT, '..', 'shared', 'data', 'qqp-dev.jsonl');
  const pairs = readLabelled(file);
  const { model, choice } = fitDecision(pairs, (l) => process.stderr.write(`${l}\n`));
  const p = choice.point;
  const summary = [
    `Fitted on ${pairs.length} pairs of ${file.slice(file.lastIndexOf('/') + 1)}; ${model.trees.length} trees of depth ${model.depth}.`,
    `Default threshold ${p.threshold} (${choice.rule === 'target' ? `held-out precision on the hardest >= ${TARGET_PRECISION * 100}%` : `the ${TARGET_PRECISION * 100}% target is out of reach: best held-out precision on the hardest`}):`,
    `held out, mean of 5 folds: duplicates reused ${pct(p.reuseDup)}, wrong ${pct(p.wrongAll)} of all / ${pct(p.wrongHard)} of the hardest non-duplicates,`,
    `precision at 1:1 ${pct(p.precisionAll)} (all) / ${pct(p.precisionHard)} (hardest; worst fold ${pct(p.minPrecisionHard)}).`,
    `Stale threshold ${choice.stale.threshold}: reused ${pct(choice.stale.reuseDup)}, precision on the hardest ${pct(choice.stale.precisionHard)}. Cosine prefilter ${model.minCosine}.`,
  ];
  const source = modelSource(model, summary);
  for (const l of summary) process.stdout.write(`${l}\n`);
  if (check) {
    const current = readFileSync(MODEL_FILE, 'utf8');
    if (current !== source) {
      process.stdout.write(`${MODEL_FILE} differs from what this data produces: run npm run fit:cache-decision\n`);
      return 1;
    }
    process.stdout.write(`${MODEL_FILE} is what this data produces.\n`);
    return 0;
  }
  writeFileSync(MODEL_FILE, source);
  process.stdout.write(`Wrote ${MODEL_FILE} (${(source.length / 1024).toFixed(0)} KiB)\n`);
  return 0;
}

process.exit(main());
