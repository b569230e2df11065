/**
 * A tiny on-disk dataset for the trainer's tests: a source manifest with PNG images and masks, and optional CF/F
 * corpora, written with the real manifest encoder (and, for corpora, corpus.json, done markers and the corpus id of
 * the manifests contract) so the trainer reads exactly what the pipeline writes.
 *
 * Images: a 2-class "waterbirds": class 0 has a red square, class 1 a blue square, on a background whose colour
 * (place) agrees with the class with probability `correlation` in train and val, and for half the test images.
 */
import sharp from 'sharp';
import { mkdir } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import {
  ManifestWriter, TOOL_VERSION, corpusIdFor, encodeManifest, manifestDigest, rngFor, shardContentHash, shardName, writeFileAtomic, writeJsonAtomic,
  type CorpusRow, type ManifestMetadata, type SourceRow,
} from '../manifests/index.ts';

export interface ToyOptions {
  dataset?: string;
  side?: number;
  counts?: { train: number; val: number; test: number };
  correlation?: number;
  /** corpus folders to write, e.g. ['cf-tile', 'f-random'] */
  corpora?: string[];
  /** generated variants per original */
  variants?: number;
  seed?: number;
}

export interface Toy {
  corporaRoot: string;
  dataRoot: string;
  dataset: string;
  rows: SourceRow[];
  /** the colour each generated image was filled with, by corpus row id, so tests can tell them apart */
  generatedColour: Map<string, [number, number, number]>;
}

const BG = [[40, 160, 40], [200, 200, 60]]; // land green, water-ish yellow (place 0, 1)
const FG = [[220, 30, 30], [30, 30, 220]]; // class 0 red, class 1 blue

export async function pngOf(width: number, height: number, channels: 1 | 3, data: Uint8Array): Promise<Buffer> {
  return sharp(Buffer.from(data), { raw: { width, height, channels } }).png().toBuffer();
}

export async function writeToyDataset(dir: string, opts: ToyOptions = {}): Promise<Toy> {
  const dataset = opts.dataset ?? 'toy';
  const side = opts.side ?? 20;
  const counts = opts.counts ?? { train: 8, val: 4, test: 8 };
  const corr = opts.correlation ?? 1;
  const seed = opts.seed ?? 0;
  const dataRoot = join(dir, 'data', dataset);
  const corporaRoot = join(dir, 'corpora');
  await mkdir(join(dataRoot, 'images'), { recursive: true });
  await mkdir(join(dataRoot, 'masks'), { recursive: true });
  const rows: SourceRow[] = [];
  const boxes = new Map<string, [number, number, number, number]>();
  for (const split of ['train', 'val', 'test'] as const) {
    for (let i = 0; i < counts[split]; i++) {
      const rng = rngFor(seed, 'toy', split, i);
      const y = i % 2;
      const agree = split === 'test' ? i % 4 < 2 : rng.next() < corr;
      const place = agree ? y : 1 - y;
      const w = Math.max(3, Math.floor(side / 3)), h = w;
      const x0 = rng.int(side - w + 1), y0 = rng.int(side - h + 1);
      const img = new Uint8Array(side * side * 3);
      const mask = new Uint8Array(side * side);
      for (let py = 0; py < side; py++) {
        for (let px = 0; px < side; px++) {
          const inObj = px >= x0 && px < x0 + w && py >= y0 && py < y0 + h;
          const c = inObj ? FG[y] : BG[place];
          for (let k = 0; k < 3; k++) img[(py * side + px) * 3 + k] = c[k];
          mask[py * side + px] = inObj ? 255 : 0;
        }
      }
      const id = `${split}-${String(i).padStart(3, '0')}`;
      await sharp(Buffer.from(img), { raw: { width: side, height: side, channels: 3 } }).png().toFile(join(dataRoot, 'images', `${id}.png`));
      await sharp(Buffer.from(mask), { raw: { width: side, height: side, channels: 1 } }).png().toFile(join(dataRoot, 'masks', `${id}.png`));
      boxes.set(id, [x0, y0, w, h]);
      rows.push({
        id, split, label: y, class_name: y ? 'waterbird' : 'landbird', path: `images/${id}.png`, mask_path: `masks/${id}.png`,
        mask_format: 'png-nonzero', boxes: [x0, y0, w, h], group: `y=${y},place=${place}`, place, location: null, variant: null,
        width: side, height: side, status: 'ok', error: null,
      });
    }
  }
  const meta: ManifestMetadata = {
    format: 'cfgen-manifest', format_version: 1, kind: 'source', dataset, class_names: ['landbird', 'waterbird'],
    tool_version: TOOL_VERSION, seed, config: { root: dataRoot, adapter: 'waterbirds' },
  };
  const w = new ManifestWriter<SourceRow>(join(corporaRoot, dataset, 'source'), 'source', meta, { prefix: 'source', rowsPerShard: 7 });
  for (const r of rows) await w.write(r);
  await w.close();

  const generatedColour = new Map<string, [number, number, number]>();
  for (const folder of opts.corpora ?? []) {
    const kind = folder.startsWith('cf-') ? 'cf' : 'f';
    const method = folder.replace(/^c?f-/, '');
    const cdir = join(corporaRoot, dataset, folder);
    await mkdir(join(cdir, 'images'), { recursive: true });
    const crows: CorpusRow[] = [];
    let n = 0;
    for (const r of rows.filter((r) => r.split === 'train')) {
      for (let v = 0; v < (opts.variants ?? 1); v++) {
        const id = `${r.id}/${method}/${v}`;
        // A CF image keeps the background and replaces the object; an F image keeps the object on a new background.
        // Every generated image gets a colour unique to (source, folder, variant) in its infilled region.
        n++;
        const colour: [number, number, number] = [(n * 37) % 256, (n * 91 + 7) % 256, kind === 'cf' ? 5 : 250];
        generatedColour.set(id, colour);
        const [bx, by, bw, bh] = boxes.get(r.id)!;
        const img = new Uint8Array(side * side * 3);
        for (let py = 0; py < side; py++) {
          for (let px = 0; px < side; px++) {
            const inObj = px >= bx && px < bx + bw && py >= by && py < by + bh;
            const fill = kind === 'cf' ? inObj : !inObj;
            const c = fill ? colour : inObj ? FG[r.label] : BG[r.place!];
            for (let k = 0; k < 3; k++) img[(py * side + px) * 3 + k] = c[k];
          }
        }
        const rel = `images/${r.id}-${v}.png`;
        await sharp(Buffer.from(img), { raw: { width: side, height: side, channels: 3 } }).png().toFile(join(cdir, rel));
        crows.push({
          id, source_id: r.id, source_path: r.path, image_path: rel, split: r.split, label: r.label, class_name: r.class_name,
          non_y: kind === 'cf', kind, method, params: '{}', variant: v, seed, mask_kind: kind === 'cf' ? 'box' : 'seg', sha256: null,
          width: side, height: side, status: 'ok', error: null,
        });
      }
    }
    await writeToyCorpus(cdir, { ...meta, kind: 'corpus', config: { method: folder } }, crows, CORPUS_ROWS_PER_PART);
  }
  return { corporaRoot, dataRoot, dataset, rows, generatedColour };
}

/** Rows per manifest part of the toy corpora: small, so an 8-image corpus has two parts to lose or mix. */
export const CORPUS_ROWS_PER_PART = 5;

/**
 * Write `rows` as a complete corpus in `dir`, the way `generate` leaves one: parts `manifest/part-NNNNN.arrow` of
 * `perPart` rows stamped with the corpus id, a done marker with each part's content hash, and corpus.json last.
 * `metadata.config` is the corpus config; the source digest is that of the source manifest beside `dir`.
 */
export async function writeToyCorpus(dir: string, metadata: ManifestMetadata, rows: CorpusRow[], perPart: number): Promise<string> {
  const sourceDigest = await manifestDigest(join(dirname(dir), 'source'), 'source');
  const parts: CorpusRow[][] = [];
  for (let i = 0; i < Math.max(1, rows.length); i += perPart) parts.push(rows.slice(i, i + perPart));
  const hashes = parts.map(shardContentHash);
  const corpusId = corpusIdFor(TOOL_VERSION, metadata.config, sourceDigest, hashes);
  const stamped: ManifestMetadata = { ...metadata, tool_version: TOOL_VERSION, source_digest: sourceDigest, corpus_id: corpusId };
  for (let i = 0; i < parts.length; i++) {
    const part = join(dir, 'manifest', shardName('part', i));
    await writeFileAtomic(part, encodeManifest('corpus', stamped, parts[i]));
    await writeJsonAtomic(part.replace(/\.arrow$/, '.done'), { format: 'cfgen-shard-done', shard: i, rows: parts[i].length, content_hash: hashes[i] });
  }
  await writeJsonAtomic(join(dir, 'corpus.json'), {
    corpus_id: corpusId, tool_version: TOOL_VERSION, dataset: metadata.dataset, name: basename(dir), config: metadata.config,
    source_digest: sourceDigest, shards: parts.length,
  });
  return corpusId;
}
