import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { openCorpus, type CorpusRow } from '../manifests/index.ts';
import { GENERATE_DEFAULTS, createProgress, runGenerate } from '../pipeline/generate/index.ts';
import { H, W, makeFixture, png, type Fixture } from './generate-fixture.ts';

/**
 * Corpora to export: the generate tests' tiny dataset (10 train + 2 val images), cf-tile (1 variant) and f-random
 * (2 variants) over train and val, with one empty mask so some rows are skipped (an export leaves them out).
 */
export interface ExportFixture extends Fixture {
  /** `<tmp>/corpora/toy` */
  base: string;
  dir: (method: string) => string;
}

export const EXPORT_METHODS = ['cf-tile', 'f-random'] as const;

export async function makeExportFixture(): Promise<ExportFixture> {
  const fx = await makeFixture(10);
  // image 3's mask holds no object: its rows are `skipped`, with no image
  await writeFile(join(fx.root, 'masks', '3.png'), await png(Buffer.alloc(W * H), W, H, 1));
  const s = await runGenerate({
    ...GENERATE_DEFAULTS, sourceDir: fx.sourceDir, methods: [...EXPORT_METHODS], variants: 2, splits: ['train', 'val'], size: null,
    params: {}, shardSize: 4, progress: createProgress({ quiet: true }), log: () => {},
  });
  if (s.exitCode !== 0) throw new Error(`fixture generation failed: ${s.exitReason}`);
  const base = join(fx.tmp, 'corpora', 'toy');
  return { ...fx, base, dir: (m) => join(base, m) };
}

/** A corpus's rows through the contract's reader (every row, any status). */
export async function manifestRows(dir: string): Promise<CorpusRow[]> {
  const c = await openCorpus(dir);
  const rows: CorpusRow[] = [];
  for await (const r of c.rows()) rows.push(r);
  return rows;
}

/** The rows an export holds: ok rows, split by split in order of first appearance, manifest order within a split. */
export function exportedOrder(rows: CorpusRow[]): CorpusRow[] {
  const ok = rows.filter((r) => r.status === 'ok');
  const splits = [...new Set(ok.map((r) => r.split))];
  return splits.flatMap((s) => ok.filter((r) => r.split === s));
}

/** Every manifest column of a row, null where the reader left an optional one out (as exports write them). */
export function withNulls(row: CorpusRow, names: readonly string[]): Record<string, unknown> {
  const r = row as unknown as Record<string, unknown>;
  return Object.fromEntries(names.map((n) => [n, r[n] ?? null]));
}

export const readJson = async (file: string) => JSON.parse(await readFile(file, 'utf8'));
