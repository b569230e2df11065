import sharp, { type OverlayOptions } from 'sharp';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { UserError, rngFor, writeFileAtomic, type EvalRow } from '../../manifests/index.ts';
import { partPath, readShardRows } from '../generate/shards.ts';

/**
 * A PNG contact sheet of a stress-test corpus: one row per source image, one column per variant (the layout of
 * Xiao et al.'s Figure 1). Images are picked, seeded, among those whose every variant is ok, so no cell is empty.
 */
export interface StressGridOptions {
  /** the stress-test corpus folder */
  dir: string;
  rows: number;
  cell: number;
  seed: number;
  out: string;
}

const BG = { r: 24, g: 24, b: 24 };
const HEADER = 20;

/** Write the sheet; returns the file and the source ids shown. */
export async function writeStressGrid(o: StressGridOptions): Promise<{ out: string; sources: string[]; variants: string[] }> {
  let info: { shards: number; config: { variants: string[] } };
  try {
    info = JSON.parse(await readFile(join(o.dir, 'corpus.json'), 'utf8'));
  } catch {
    throw new UserError('no finished stress-test corpus here', { file: o.dir, fix: 'run `make stress-test DATASET=<name>` first' });
  }
  const variants = info.config.variants;
  const bySource = new Map<string, Map<string, EvalRow>>();
  for (let i = 0; i < info.shards; i++) {
    for (const r of (await readShardRows(partPath(o.dir, i))) as unknown as EvalRow[]) {
      if (r.status !== 'ok') continue;
      let m = bySource.get(r.source_id);
      if (!m) bySource.set(r.source_id, (m = new Map()));
      m.set(r.variant, r);
    }
  }
  const full = [...bySource.keys()].filter((id) => bySource.get(id)!.size === variants.length).sort();
  rngFor(o.seed, 'stress-grid').shuffle(full);
  const picked = full.slice(0, o.rows);
  if (!picked.length) throw new UserError('no image has every variant ok', { file: o.dir, fix: 'check the manifest\'s error column (`verify` lists damaged files)' });
  const W = variants.length * o.cell, H = HEADER + picked.length * o.cell;
  const layers: OverlayOptions[] = [{ input: header(variants, o.cell, W), top: 0, left: 0 }];
  for (let r = 0; r < picked.length; r++) {
    const cells = bySource.get(picked[r])!;
    for (let c = 0; c < variants.length; c++) {
      const row = cells.get(variants[c])!;
      const input = await sharp(await readFile(join(o.dir, row.image_path!))).resize(o.cell, o.cell, { fit: 'contain', background: BG, kernel: 'nearest' }).png().toBuffer();
      layers.push({ input, top: HEADER + r * o.cell, left: c * o.cell });
    }
  }
  const raw = await sharp({ create: { width: W, height: H, channels: 3, background: BG } }).composite(layers).raw().toBuffer({ resolveWithObject: true });
  const png = await sharp(raw.data, { raw: { width: W, height: H, channels: raw.info.channels } }).removeAlpha().png().toBuffer();
  await writeFileAtomic(o.out, png);
  return { out: o.out, sources: picked, variants };
}

function header(labels: string[], cell: number, width: number): Buffer {
  const esc = (s: string) => s.replace(/[<>&"]/g, (ch) => ({ '<': '&lt;', '>': '&gt;', '&': '&amp;', '"': '&quot;' })[ch]!);
  const texts = labels.map((l, i) => `<text x="${i * cell + cell / 2}" y="${HEADER - 6}" text-anchor="middle">${esc(l)}</text>`).join('');
  return Buffer.from(`<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${HEADER}"><style>text{font:12px sans-serif;fill:#eee}</style>${texts}</svg>`);
}
