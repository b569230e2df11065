import sharp from 'sharp';
import { mkdir, mkdtemp, readdir, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { ManifestWriter, TOOL_VERSION, sha256Hex, rngFor, type ManifestMetadata, type SourceRow } from '../manifests/index.ts';

/**
 * A tiny on-disk dataset for the generate tests: W×H noisy PNGs whose background colour family encodes the
 * class (class 0 reddish, class 1 bluish), a green elliptical object, PNG segmentation masks, and a source manifest
 * written with the contract's ManifestWriter.
 */
export const W = 24;
export const H = 20;

export interface Fixture {
  tmp: string;
  root: string;
  sourceDir: string;
  rows: SourceRow[];
}

/** The object of image i: an ellipse whose centre moves with i, sometimes touching the left/top edge. */
export function objectAt(i: number, x: number, y: number): boolean {
  const cx = [4, 12, 16, 8][i % 4], cy = [3, 10, 12, 6][i % 4];
  return (x - cx) ** 2 / 16 + (y - cy) ** 2 / 9 <= 1;
}

export function pixelOf(i: number, label: number, x: number, y: number, rnd: () => number): [number, number, number] {
  if (objectAt(i, x, y)) return [30 + Math.floor(rnd() * 20), 200 + Math.floor(rnd() * 40), 30 + Math.floor(rnd() * 20)];
  return label === 0
    ? [180 + Math.floor(rnd() * 70), 20 + Math.floor(rnd() * 40), 20 + Math.floor(rnd() * 40)]
    : [20 + Math.floor(rnd() * 40), 20 + Math.floor(rnd() * 40), 180 + Math.floor(rnd() * 70)];
}

export function rawImage(i: number, label: number): Buffer {
  const r = rngFor('fixture', i);
  const buf = Buffer.alloc(W * H * 3);
  for (let y = 0; y < H; y++) for (let x = 0; x < W; x++) buf.set(pixelOf(i, label, x, y, () => r.next()), (y * W + x) * 3);
  return buf;
}

export function rawMask(i: number): Buffer {
  const buf = Buffer.alloc(W * H);
  for (let y = 0; y < H; y++) for (let x = 0; x < W; x++) buf[y * W + x] = objectAt(i, x, y) ? 255 : 0;
  return buf;
}

export const png = (raw: Buffer, w: number, h: number, channels: 1 | 3 | 4) => sharp(raw, { raw: { width: w, height: h, channels } }).png().toBuffer();

export function sourceMeta(root: string): ManifestMetadata {
  return {
    format: 'cfgen-manifest', format_version: 1, kind: 'source', dataset: 'toy', class_names: ['land', 'water'],
    tool_version: TOOL_VERSION, seed: 0, config: { root },
  };
}

export function baseRow(i: number, split: string, label: number): SourceRow {
  return {
    id: `img/${String(i).padStart(3, '0')}`, split, label, class_name: label ? 'water' : 'land',
    path: `images/${i}.png`, mask_path: `masks/${i}.png`, mask_format: 'png-nonzero', boxes: null,
    group: `y=${label}`, place: label, location: null, variant: null, width: W, height: H, status: 'ok', error: null,
  };
}

export async function writeSource(tmp: string, root: string, rows: SourceRow[]): Promise<string> {
  const sourceDir = join(tmp, 'corpora', 'toy', 'source');
  const w = new ManifestWriter(sourceDir, 'source', sourceMeta(root), { prefix: 'source' });
  for (const r of rows) await w.write(r);
  await w.close();
  return sourceDir;
}

/** n train images (alternating labels) + 2 val images. */
export async function makeFixture(n = 12): Promise<Fixture> {
  const tmp = await mkdtemp(join(tmpdir(), 'gen-'));
  const root = join(tmp, 'data', 'toy');
  await mkdir(join(root, 'images'), { recursive: true });
  await mkdir(join(root, 'masks'), { recursive: true });
  const rows: SourceRow[] = [];
  for (let i = 0; i < n + 2; i++) {
    const label = i % 2;
    await writeFile(join(root, 'images', `${i}.png`), await png(rawImage(i, label), W, H, 3));
    await writeFile(join(root, 'masks', `${i}.png`), await png(rawMask(i), W, H, 1));
    rows.push(baseRow(i, i < n ? 'train' : 'val', label));
  }
  return { tmp, root, sourceDir: await writeSource(tmp, root, rows), rows };
}

/** Every file under dir (relative path → SHA-256), for byte-identity checks. */
export async function treeHashes(dir: string): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  const walk = async (d: string) => {
    for (const e of await readdir(d, { withFileTypes: true })) {
      const p = join(d, e.name);
      if (e.isDirectory()) await walk(p);
      else out[relative(dir, p)] = sha256Hex(await readFile(p));
    }
  };
  await walk(dir);
  return out;
}

export async function decodeRaw(file: string): Promise<Buffer> {
  return sharp(file).removeAlpha().raw().toBuffer();
}
