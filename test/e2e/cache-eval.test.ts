/** `tollgate cache eval`: the built CLI on a small labelled pairs file (test/fixtures/cache-eval-pairs.jsonl). */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli } from '../helpers/cli.js';

const FIXTURE = join(process.cwd(), 'test', 'fixtures', 'cache-eval-pairs.jsonl');

describe('tollgate cache eval', () => {
  let dir: string;
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'tollgate-cache-eval-'));
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('prints the curve with the configured threshold marked, and the threshold reaching a precision with its config line', async () => {
    const r = await runCli(['cache', 'eval', '--pairs', FIXTURE, '--precision', '0.95'], dir);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('40 labelled pairs');
    expect(r.stdout).toContain('20 duplicates, 20 non-duplicates');
    expect(r.stdout).toMatch(/decision model \(score thresholds\), embedder builtin:v1:256, guard on, threshold 0\.88/);
    expect(r.stdout).toMatch(/score threshold\s+duplicates reused\s+wrong: all non-dup\.\s+wrong: hardest\s+precision 1:1 \(all\)\s+precision 1:1 \(hardest\)/);
    expect(r.stdout).toMatch(/^0\.88 \(current\)\s+\d+\.\d% \(\d+\/20\)/m);
    const m = /from score threshold (0\.\d+): .*\nSet it: cache\.semantic\.threshold: (0\.\d+)\n/.exec(r.stdout);
    expect(m?.[1]).toBeDefined();
    expect(m?.[2]).toBe(m?.[1]);
    expect(r.stdout).toMatch(/Small sample/);
  });

  it('--json: the full sweep and the selection agree with the table', async () => {
    const r = await runCli(['cache', 'eval', '--pairs', FIXTURE, '--precision', '0.95', '--json'], dir);
    expect(r.code).toBe(0);
    const out = JSON.parse(r.stdout) as {
      pairs: number;
      duplicates: number;
      hardest: number;
      configuredThreshold: number;
      curve: Array<{ threshold: number; reusedDuplicates: number; precisionAll: number | null }>;
      target: { reached: boolean; threshold: number; config: string };
    };
    expect(out).toMatchObject({ pairs: 40, duplicates: 20, configuredThreshold: 0.88 });
    expect(out.hardest).toBeGreaterThanOrEqual(7); // a third of the 20 non-duplicates, ties included
    expect(out.curve).toHaveLength(99);
    expect(out.target.reached).toBe(true);
    expect(out.target.config).toBe(`cache.semantic.threshold: ${out.target.threshold}`);
    // The lowest threshold reaching it: every lower one with reuse is below 0.95.
    const chosen = out.curve.find((p) => p.threshold === out.target.threshold)!;
    expect(chosen.precisionAll).toBeGreaterThanOrEqual(0.95);
    for (const p of out.curve.filter((q) => q.threshold < out.target.threshold && q.reusedDuplicates > 0)) expect(p.precisionAll).toBeLessThan(0.95);
  });

  it('per route, in similarity mode: the route threshold is the current one, and the config line names the route', async () => {
    const config = join(dir, 'similarity.yaml');
    writeFileSync(
      config,
      ['cache:', '  semantic:', '    decision: similarity', 'routes:', '  auto:', '    aliases: [smart]', '    tiers: {small: [sim-small]}', '    cache: {semantic: {threshold: 0.7}}', ''].join('\n'),
    );
    const r = await runCli(['cache', 'eval', '--config', config, '--pairs', FIXTURE, '--route', 'smart', '--precision', '0.9', '--hard'], dir);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain("Settings of route 'auto': decision similarity (cosine thresholds)");
    expect(r.stdout).toMatch(/^0\.7 \(current\)/m);
    expect(r.stdout).toMatch(/\(the hardest non-duplicates\): from cosine threshold/);
    expect(r.stdout).toMatch(/Set it: routes\.auto\.cache\.semantic\.threshold: 0\.\d+/);
  });

  it('exits 2 when no threshold reaches the precision, and shows the best', async () => {
    // A mislabelled pair (the same question twice, "not a duplicate") is reused at every threshold.
    const file = join(dir, 'noisy.jsonl');
    writeFileSync(file, `${readFileSync(FIXTURE, 'utf8')}{"a": "How do I reset my password?", "b": "How do I reset my password?", "duplicate": false}\n`);
    const r = await runCli(['cache', 'eval', '--pairs', file, '--precision', '1'], dir);
    expect(r.code).toBe(2);
    expect(r.stdout).toMatch(/Precision >= 100\.0% at 1:1 \(all non-duplicates\) is not reached at any score threshold/);
    expect(r.stdout).toMatch(/Best: score threshold 0\.\d+: /);
    expect(r.stdout).not.toContain('Set it:');
  });

  it('exits 1 naming the line and field of a bad line, and on a bad option', async () => {
    const file = join(dir, 'bad.jsonl');
    writeFileSync(file, '{"a": "How do I reset my password?", "b": "How can I reset my password?"}\n{"a": "What is the capital of France?"}\n');
    const bad = await runCli(['cache', 'eval', '--pairs', file], dir);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toContain('line 2: field "b" is missing');
    expect(bad.stdout).toBe('');

    const precision = await runCli(['cache', 'eval', '--pairs', FIXTURE, '--precision', '98'], dir);
    expect(precision.code).toBe(1);
    expect(precision.stderr).toContain("--precision must be a number in (0, 1], e.g. 0.98; got '98'");

    const route = await runCli(['cache', 'eval', '--pairs', FIXTURE, '--route', 'nope'], dir);
    expect(route.code).toBe(1);
    expect(route.stderr).toContain("--route: no route or model named 'nope'");

    const missing = await runCli(['cache', 'eval', '--pairs', join(dir, 'missing.jsonl')], dir);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toContain('file not found');
  });

  it('a file of positive pairs only: says they were taken as duplicates; --precision needs non-duplicates', async () => {
    const file = join(dir, 'positives.jsonl');
    writeFileSync(file, '{"a": "How do I reset my password?", "b": "How can I reset my password?"}\n{"a": "How do I delete my account?", "b": "How can I delete my account?"}\n');
    const r = await runCli(['cache', 'eval', '--pairs', file], dir);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('2 line(s) had no "duplicate" field: taken as duplicates (positive pairs)');
    const p = await runCli(['cache', 'eval', '--pairs', file, '--precision', '0.9'], dir);
    expect(p.code).toBe(1);
    expect(p.stderr).toContain('--precision needs both duplicates and non-duplicates');
  });
});
