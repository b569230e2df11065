import sharp, { type OverlayOptions } from 'sharp';
import { join } from 'node:path';
import { readFile } from 'node:fs/promises';
import { UserError, readSourceManifest, rngFor, writeFileAtomic, type CorpusRow, type SourceRow } from '../manifests/index.ts';
import { resolveInsideRoot } from '../manifests/masks.ts';
import { partPath, readShardRows } from './generate/index.ts';
import { datasetRootOf } from '../common/paths.ts';

/**
 * `sample-grid`: a PNG contact sheet like the paper's Figure 2. Row = one source image; column 1 the original, then
 * one column per corpus (CF methods first, then F), each cell the variant-0 image letterboxed to cell×cell.
 * Images are picked (seeded) among those every chosen corpus has an ok image for; a cell a corpus lacks stays dark.
 */
export interface SampleGridOptions {
  /** `<corpora>/<dataset>` folder: holds source/ and one folder per method */
  base: string;
  methods: string[];
  rows: number;
  cell: number;
  seed: number;
  split?: string;
  out: string;
}

const BG = { r: 24, g: 24, b: 24 };
const HEADER = 22;

export async function writeSampleGrid(o: SampleGridOptions): Promise<{ out: string; sources: string[] }> {
  const source = await readSourceManifest(join(o.base, 'source'));
  const root = datasetRootOf(String(source.metadata.config.root ?? ''));
  const byId = new Map<string, SourceRow>(source.rows.map((r) => [r.id, r]));
  const corpora: { name: string; kind: string; rows: Map<string, CorpusRow> }[] = [];
  for (const name of o.methods) {
    const dir = join(o.base, name);
    let info: { shards: number; kind: string };
    try {
      info = JSON.parse(await readFile(join(dir, 'corpus.json'), 'utf8'));
    } catch {
      throw new UserError(`no finished ${name} corpus`, { file: dir, fix: `run \`make generate METHODS=${name}\` first` });
    }
    const rows = new Map<string, CorpusRow>();
    for (let i = 0; i < info.shards; i++) {
      for (const r of await readShardRows(partPath(dir, i))) if (r.status === 'ok' && r.variant === 0 && (!o.split || r.split === o.split)) rows.set(r.source_id, r);
    }
    corpora.push({ name, kind: info.kind, rows });
  }
  corpora.sort((a, b) => (a.kind === b.kind ? 0 : a.kind === 'cf' ? -1 : 1));
  if (!corpora.length) throw new UserError('no corpora to show', { fix: 'give --methods, or generate some corpora first' });

  // candidates: source ids ranked by how many corpora have them, then a seeded shuffle within the best tier
  const coverage = new Map<string, number>();
  for (const c of corpora) for (const id of c.rows.keys()) coverage.set(id, (coverage.get(id) ?? 0) + 1);
  const ids = [...coverage.keys()].filter((id) => byId.has(id)).sort();
  const rng = rngFor(o.seed, 'sample-grid');
  rng.shuffle(ids);
  ids.sort((a, b) => coverage.get(b)! - coverage.get(a)!); // stable: keeps the shuffle within equal coverage
  const picked = ids.slice(0, o.rows);
  if (!picked.length) throw new UserError('the corpora have no ok images to show', { fix: 'check `verify` and the manifests\' error column' });

  const cols = 1 + corpora.length;
  const W = cols * o.cell, H = HEADER + picked.length * o.cell;
  const cellOf = async (file: string) => sharp(await readFile(file)).removeAlpha().resize(o.cell, o.cell, { fit: 'contain', background: BG }).png().toBuffer();
  const layers: OverlayOptions[] = [{ input: headerSvg(['original', ...corpora.map((c) => c.name)], o.cell, W), top: 0, left: 0 }];
  for (let r = 0; r < picked.length; r++) {
    const id = picked[r];
    const src = byId.get(id)!;
    const top = HEADER + r * o.cell;
    layers.push({ input: await cellOf(resolveInsideRoot(root, src.path, { file: join(o.base, 'source'), row: id })), top, left: 0 });
    for (let c = 0; c < corpora.length; c++) {
      const row = corpora[c].rows.get(id);
      if (row?.image_path) layers.push({ input: await cellOf(join(o.base, corpora[c].name, row.image_path)), top, left: (c + 1) * o.cell });
    }
  }
  const sheet = await sharp({ create: { width: W, height: H, channels: 3, background: BG } }).composite(layers).raw().toBuffer({ resolveWithObject: true });
  // the SVG header brings an alpha channel into the composite; the sheet itself is opaque RGB
  const png = await sharp(sheet.data, { raw: { width: W, height: H, channels: sheet.info.channels } }).removeAlpha().png().toBuffer();
  await writeFileAtomic(o.out, png);
  return { out: o.out, sources: picked };
}

function headerSvg(labels: string[], cell: number, width: number): Buffer {
  const esc = (s: string) => s.replace(/[<>&"]/g, (ch) => ({ '<': '&lt;', '>': '&gt;', '&': '&amp;', '"': '&quot;' })[ch]!);
  const texts = labels.map((l, i) => `<text x="${i * cell + cell / 2}" y="${HEADER - 7}" text-anchor="middle">${esc(l)}</text>`).join('');
  return Buffer.from(`<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${HEADER}"><style>text{font:13px sans-serif;fill:#eee}</style>${texts}</svg>`);
}
