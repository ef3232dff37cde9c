#!/usr/bin/env node
/**
 * Builds the dashboard (dashboard/src/*.ts, its CSS and uPlot's) into dist/dashboard/: one
 * content-hashed JS and CSS file each and index.html pointing at them. Run by `npm run build`
 * (and so at `npm install`, through `prepare`). Everything is bundled: the page needs no network.
 */
import { mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { basename, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';

const root = fileURLToPath(new URL('..', import.meta.url));
const out = join(root, 'dist', 'dashboard');
const tmp = `${out}.tmp-${process.pid}`;
const entry = join(root, 'dashboard', 'src', 'main.ts');

rmSync(tmp, { recursive: true, force: true });
mkdirSync(tmp, { recursive: true });
try {
  const result = await build({
    entryPoints: [entry],
    bundle: true,
    format: 'esm',
    platform: 'browser',
    target: ['es2022'],
    minify: true,
    sourcemap: 'linked',
    legalComments: 'none',
    outdir: tmp,
    entryNames: 'app-[hash]',
    assetNames: '[name]-[hash]',
    metafile: true,
    logLevel: 'warning',
    absWorkingDir: root,
  });
  const entryRel = relative(root, entry).split('\\').join('/');
  const [jsPath, meta] = Object.entries(result.metafile.outputs).find(([, o]) => o.entryPoint === entryRel) ?? [];
  if (!jsPath || !meta) throw new Error(`esbuild produced no output for ${entryRel}`);
  const js = basename(jsPath);
  const css = meta.cssBundle ? basename(meta.cssBundle) : undefined;
  if (!css) throw new Error('esbuild produced no CSS bundle for the dashboard');
  const html = readFileSync(join(root, 'dashboard', 'index.html'), 'utf8').replace('%JS%', `./${js}`).replace('%CSS%', `./${css}`);
  writeFileSync(join(tmp, 'index.html'), html);
  rmSync(out, { recursive: true, force: true });
  renameSync(tmp, out);
  console.log(`dashboard built: ${relative(root, out)}/ (${js}, ${css})`);
} catch (err) {
  rmSync(tmp, { recursive: true, force: true });
  console.error(err instanceof Error ? err.message : err);
  process.exit(1);
}
