import { describe, it, expect, beforeAll } from 'vitest';
import { spawnSync } from 'node:child_process';
import { cp, mkdtemp, readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { extname, join } from 'node:path';
import * as arrow from 'apache-arrow';
import fg from 'fast-glob';
import { DuckDBInstance } from '@duckdb/node-api';
import { METADATA_KEY } from '../manifests/index.ts';
import { PROJECT_ROOT } from '../common/paths.ts';
import { createProgress } from '../pipeline/generate/index.ts';
import { exportCorpus } from '../pipeline/export/index.ts';
import { makeExportFixture } from './export-fixture.ts';

/**
 * Every Python snippet the README shows for reading corpora (its "Reading a corpus from Python" section) and every one
 * of docs/export.md runs against a small generated corpus laid out as the snippets expect
 * (`corpora/synth-waterbirds/cf-tile/…`, with both exports). Where python3 cannot import what a snippet imports
 * (pip reaches no package index on some machines; torch and webdataset are big), the files the snippet names are read
 * with DuckDB, apache-arrow and a tar listing instead, and the test says which was done.
 */

interface Snippet { where: string; code: string }

function pythonBlocks(markdown: string, where: string): Snippet[] {
  return [...markdown.matchAll(/^```python\n([\s\S]*?)^```/gm)].map((m, i) => ({ where: `${where} #${i + 1}`, code: m[1] }));
}

async function snippets(): Promise<Snippet[]> {
  const readme = await readFile(join(PROJECT_ROOT, 'README.md'), 'utf8');
  const start = readme.indexOf('## Reading a corpus from Python');
  const section = readme.slice(start, readme.indexOf('\n## ', start + 1));
  return [
    ...pythonBlocks(section, 'README.md "Reading a corpus from Python"'),
    ...pythonBlocks(await readFile(join(PROJECT_ROOT, 'docs', 'export.md'), 'utf8'), 'docs/export.md'),
  ];
}

/** Top-level modules a snippet imports. */
export function importsOf(code: string): string[] {
  const mods = new Set<string>();
  for (const line of code.split('\n')) {
    const from = /^\s*from\s+([A-Za-z_]\w*)/.exec(line);
    if (from) { mods.add(from[1]); continue; }
    const imp = /^\s*import\s+(.+)$/.exec(line);
    if (imp) for (const part of imp[1].split(',')) mods.add(part.trim().split(/[\s.]/)[0]);
  }
  return [...mods];
}

const python = (args: string[], cwd?: string) => spawnSync('python3', args, { cwd, encoding: 'utf8', timeout: 300_000 });

/** The modules python3 cannot import (all of them when there is no python3). */
function missingModules(mods: string[]): string[] {
  const r = python(['-c', 'import importlib.util, sys; print(",".join(m for m in sys.argv[1:] if importlib.util.find_spec(m) is None))', ...mods]);
  if (r.status !== 0) return mods;
  return r.stdout.trim().split(',').filter(Boolean);
}

/** What python3 would have read, read here: every `corpora/…` path the snippet names must exist and decode. */
async function readWithoutPython(code: string, cwd: string): Promise<string[]> {
  const done: string[] = [];
  const db = await (await DuckDBInstance.create(':memory:')).connect();
  try {
    for (const [, pattern] of code.matchAll(/"(corpora\/[^"]+)"/g)) {
      const files = (await fg(pattern, { cwd, absolute: true, onlyFiles: true })).sort();
      const dirs = files.length ? [] : await fg(pattern, { cwd, absolute: true, onlyDirectories: true });
      expect(files.length + dirs.length, `${pattern} names no file`).toBeGreaterThan(0);
      for (const dir of dirs) files.push(...(await fg('data/*', { cwd: dir, absolute: true })).sort());
      for (const f of files) {
        if (extname(f) === '.arrow') {
          const t = arrow.tableFromIPC(await readFile(f));
          expect(JSON.parse(t.schema.metadata.get(METADATA_KEY)!).format).toBe('cfgen-manifest');
          expect(t.numRows).toBeGreaterThan(0);
          done.push(`apache-arrow read ${t.numRows} rows of ${pattern}`);
        } else if (extname(f) === '.parquet') {
          const r = await db.runAndReadAll(`SELECT count(*)::INTEGER AS n, count(image.bytes)::INTEGER AS images FROM read_parquet('${f}')`);
          const { n, images } = r.getRowObjectsJS()[0] as { n: number; images: number };
          expect(n).toBeGreaterThan(0);
          expect(images).toBe(n);
          done.push(`DuckDB read ${n} rows with images of ${pattern}`);
        } else if (extname(f) === '.tar') {
          const names = spawnSync('tar', ['-tf', f], { encoding: 'utf8' }).stdout.trim().split('\n');
          expect(names.length % 3).toBe(0);
          expect(names.slice(0, 3).map((n) => extname(n))).toEqual(['.cls', '.json', '.png']);
          done.push(`tar listed ${names.length / 3} samples of ${pattern}`);
        }
      }
    }
  } finally {
    db.closeSync();
  }
  return [...new Set(done)];
}

describe('README and docs/export.md Python snippets', () => {
  let cwd: string;
  beforeAll(async () => {
    const fx = await makeExportFixture();
    cwd = await mkdtemp(join(tmpdir(), 'snippets-'));
    const base = join(cwd, 'corpora', 'synth-waterbirds');
    await cp(fx.base, base, { recursive: true });
    for (const format of ['parquet', 'webdataset'] as const) {
      await exportCorpus({ dir: join(base, 'cf-tile'), format, progress: createProgress({ quiet: true }) });
    }
  });

  it('finds the snippets: the README shows pyarrow/polars, datasets, webdataset and PyTorch', async () => {
    const all = await snippets();
    const readme = all.filter((s) => s.where.startsWith('README'));
    expect(readme.map((s) => importsOf(s.code))).toEqual([['glob', 'json', 'polars', 'pyarrow'], ['datasets'], ['glob', 'webdataset'], ['torch', 'datasets']]);
    expect(all.length).toBeGreaterThan(readme.length);
  });

  it('runs each snippet with python3 where it can, and otherwise reads what it names', async () => {
    const report: string[] = [];
    for (const s of await snippets()) {
      const missing = missingModules(importsOf(s.code));
      if (!missing.length) {
        const r = python(['-c', s.code], cwd);
        expect(r.status, `${s.where} failed:\n${s.code}\n${r.stderr}`).toBe(0);
        report.push(`${s.where}: ran with python3 (${r.stdout.trim().split('\n').at(-1)?.slice(0, 80) ?? ''})`);
      } else {
        const done = await readWithoutPython(s.code, cwd);
        report.push(`${s.where}: python3 cannot import ${missing.join(', ')}; instead ${done.join('; ') || 'nothing to read'}`);
      }
    }
    process.stdout.write(`${report.join('\n')}\n`);
  });
});
