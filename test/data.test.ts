import { describe, it, expect, beforeAll } from 'vitest';
import { mkdtemp, mkdir, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ManifestWriter, TOOL_VERSION, readSourceManifest, rngFor, type ManifestMetadata, type SourceRow } from '../manifests/index.ts';
import { resizeMask, chooseCrop, trainResizeSide } from '../trainer/augment.ts';
import { loadDatasetIndex, missingCorpora, resolveDatasetRoot, trainBatches, evalBatches, epochOrder, pickVariant, ROLE, type TrainBatch } from '../trainer/data.ts';
import { parseMethod } from '../trainer/method.ts';
import { PROJECT_ROOT } from '../common/paths.ts';
import { writeToyCorpus, writeToyDataset, pngOf, type Toy } from './train-fixture.ts';

const byte = (v: number): number => Math.round((v + 1) * 127.5);

async function collect(gen: AsyncGenerator<TrainBatch>): Promise<TrainBatch[]> {
  const out: TrainBatch[] = [];
  for await (const b of gen) out.push(b);
  return out;
}

describe('mask resize', () => {
  it('upsizing by a whole factor is nearest-neighbour replication', () => {
    const m = resizeMask({ width: 2, height: 2, data: Uint8Array.from([1, 0, 0, 1]) }, 4, 4);
    expect([...m.data]).toEqual([1, 1, 0, 0, 1, 1, 0, 0, 0, 0, 1, 1, 0, 0, 1, 1]);
  });

  it('downsizing keeps any object pixel under the footprint (never shrinks the object)', () => {
    const one = new Uint8Array(16); one[3] = 1; // (x 3, y 0)
    expect([...resizeMask({ width: 4, height: 4, data: one }, 2, 2).data]).toEqual([0, 1, 0, 0]);
    const centre = new Uint8Array(25); centre[12] = 1; // (2, 2) of 5×5 straddles every 2×2 output pixel
    expect([...resizeMask({ width: 5, height: 5, data: centre }, 2, 2).data]).toEqual([1, 1, 1, 1]);
    expect([...resizeMask({ width: 5, height: 5, data: new Uint8Array(25) }, 2, 2).data]).toEqual([0, 0, 0, 0]);
  });
});

describe('random crop', () => {
  it('always overlaps the object box, even a 1-pixel object in a far corner', () => {
    for (let s = 0; s < 200; s++) {
      const c = chooseCrop(100, 100, 16, { x: 97, y: 2, w: 1, h: 1 }, rngFor('crop', s));
      expect(c.x <= 97 && 97 < c.x + 16 && c.y <= 2 && 2 < c.y + 16).toBe(true);
      const d = chooseCrop(18, 18, 16, { x: 0, y: 17, w: 1, h: 1 }, rngFor('crop2', s));
      expect([d.x, d.y]).toEqual([0, 2]);
    }
  });

  it('flips about half the time and uses every offset', () => {
    const seen = new Set<string>();
    let flips = 0;
    for (let s = 0; s < 400; s++) {
      const c = chooseCrop(18, 18, 16, null, rngFor('c', s));
      seen.add(`${c.x},${c.y}`);
      if (c.flip) flips++;
    }
    expect(seen.size).toBe(9);
    expect(flips).toBeGreaterThan(150);
    expect(flips).toBeLessThan(250);
  });
});

describe('train stream on a coordinate-coded image', () => {
  const S = 16, R = trainResizeSide(S); // 18: the image is stored at the train resize side, so no resampling
  let dir: string;
  let maskAt: (x: number, y: number) => number;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'trdata-'));
    const root = join(dir, 'data');
    await mkdir(root, { recursive: true });
    // R = 12·x, G = 12·y encodes where each pixel came from; the mask is an asymmetric L.
    const img = new Uint8Array(R * R * 3), mask = new Uint8Array(R * R);
    maskAt = (x, y) => ((x >= 3 && x < 6 && y >= 4 && y < 14) || (x >= 3 && x < 12 && y >= 11 && y < 14) ? 1 : 0);
    for (let y = 0; y < R; y++) for (let x = 0; x < R; x++) {
      img.set([12 * x, 12 * y, 100], (y * R + x) * 3);
      mask[y * R + x] = 255 * maskAt(x, y);
    }
    await writeFile(join(root, 'a.png'), await pngOf(R, R, 3, img));
    await writeFile(join(root, 'a-mask.png'), await pngOf(R, R, 1, mask));
    const row: SourceRow = {
      id: 'a', split: 'train', label: 0, class_name: 'c0', path: 'a.png', mask_path: 'a-mask.png', mask_format: 'png-nonzero',
      boxes: [3, 4, 9, 10], group: null, place: null, location: null, variant: null, width: R, height: R, status: 'ok', error: null,
    };
    const meta: ManifestMetadata = { format: 'cfgen-manifest', format_version: 1, kind: 'source', dataset: 'coord', class_names: ['c0', 'c1'], tool_version: TOOL_VERSION, seed: 0, config: { root, adapter: 'folder' } };
    const w = new ManifestWriter<SourceRow>(join(dir, 'corpora', 'coord', 'source'), 'source', meta, { prefix: 'source' });
    await w.write(row);
    await w.write({ ...row, id: 'v', split: 'val' });
    await w.close();
  });

  it('image and mask go through the same crop and flip, pixel for pixel', async () => {
    const index = await loadDatasetIndex({ corporaRoot: join(dir, 'corpora'), dataset: 'coord', terms: [] });
    let flipped = 0, straight = 0;
    for (let epoch = 0; epoch < 12; epoch++) {
      const [b] = await collect(trainBatches(index, epoch, { batchSize: 4, size: S, seed: 3, withMasks: true }));
      expect(b.n).toBe(1);
      const src = (x: number, y: number): [number, number] => {
        const p = (y * S + x) * 3;
        return [byte(b.x[p]) / 12, byte(b.x[p + 1]) / 12];
      };
      const [x0, y0] = src(0, 0);
      const [x1] = src(1, 0);
      const flip = x1 < x0;
      flip ? flipped++ : straight++;
      const cx = flip ? x0 - (S - 1) : x0;
      for (let y = 0; y < S; y++) for (let x = 0; x < S; x++) {
        const [sx, sy] = src(x, y);
        expect([sx, sy]).toEqual([flip ? cx + S - 1 - x : cx + x, y0 + y]);
        expect(b.objMask![y * S + x]).toBe(maskAt(sx, sy));
        expect(byte(b.x[(y * S + x) * 3 + 2])).toBe(100);
      }
      expect(b.maskUsable[0]).toBe(1);
    }
    expect(flipped).toBeGreaterThan(0);
    expect(straight).toBeGreaterThan(0);
  });

  it('eval resizes to S×S without crop or flip, masks any-over', async () => {
    const index = await loadDatasetIndex({ corporaRoot: join(dir, 'corpora'), dataset: 'coord', terms: [] });
    const [b] = await collect(evalBatches(index.root, index.val, { size: 9, batchSize: 8, withMasks: true }) as AsyncGenerator<never>);
    const eb = b as unknown as { n: number; x: Float32Array; masks: Float32Array };
    expect(eb.n).toBe(1);
    // 18 → 9 halves each axis: output (x, y) covers source 2x..2x+1, so R rises left to right, G top to bottom
    expect(byte(eb.x[0])).toBeLessThan(byte(eb.x[8 * 3]));
    expect(byte(eb.x[1])).toBeLessThan(byte(eb.x[8 * 9 * 3 + 1]));
    for (let y = 0; y < 9; y++) for (let x = 0; x < 9; x++) {
      const any = maskAt(2 * x, 2 * y) | maskAt(2 * x + 1, 2 * y) | maskAt(2 * x, 2 * y + 1) | maskAt(2 * x + 1, 2 * y + 1);
      expect(eb.masks[y * 9 + x]).toBe(any);
    }
  });
});

describe('train stream with corpora', () => {
  let toy: Toy;
  beforeAll(async () => {
    toy = await writeToyDataset(await mkdtemp(join(tmpdir(), 'trtoy-')), { corpora: ['cf-tile', 'f-random'], variants: 2, side: 18, counts: { train: 7, val: 2, test: 2 } });
  });

  it('puts each original\'s CF and F images in its own batch, sharing its crop', async () => {
    const method = parseMethod('cf-tile+f-random');
    const index = await loadDatasetIndex({ corporaRoot: toy.corporaRoot, dataset: toy.dataset, terms: [...method.cf, ...method.f] });
    expect(index.train.length).toBe(7);
    expect(index.corpusStats['cf-tile']).toEqual({ originalsCovered: 7, skipped: 0, errors: 0, variants: 2 });
    const S = 16, P = S * S;
    for (const epoch of [0, 1]) {
      const batches = await collect(trainBatches(index, epoch, { batchSize: 3, size: S, seed: 9, withMasks: true, concurrency: 3 }));
      expect(batches.map((b) => [b.nOrig, b.n])).toEqual([[3, 9], [3, 9], [1, 3]]);
      expect(new Set(batches.flatMap((b) => b.ids.slice(0, b.nOrig))).size).toBe(7);
      for (const b of batches) {
        expect([...b.role]).toEqual([...Array(b.nOrig).fill(ROLE.orig), ...Array(b.nOrig).fill(ROLE.cf), ...Array(b.nOrig).fill(ROLE.f)]);
        for (let i = b.nOrig; i < b.n; i++) {
          const p = b.parent[i];
          const [sourceId, method, variant] = b.ids[i].split('/');
          expect(sourceId).toBe(b.ids[p]);
          expect(Number(variant)).toBe(epoch % 2);
          expect(b.labels[i]).toBe(b.labels[p]);
          const colour = toy.generatedColour.get(b.ids[i])!;
          const cf = method === 'tile';
          expect(b.role[i]).toBe(cf ? ROLE.cf : ROLE.f);
          let filled = 0;
          for (let q = 0; q < P; q++) {
            const inObj = b.objMask![p * P + q] === 1;
            const px = [0, 1, 2].map((k) => byte(b.x[(i * P + q) * 3 + k]));
            if (inObj === cf) { expect(px).toEqual(colour); filled++; }
            else expect(px).toEqual([0, 1, 2].map((k) => byte(b.x[(p * P + q) * 3 + k]))); // same crop and flip as the original
          }
          expect(filled).toBeGreaterThan(0);
        }
      }
    }
  });

  it('the seeded order and augmentation are deterministic, and change with the seed and epoch', async () => {
    const index = await loadDatasetIndex({ corporaRoot: toy.corporaRoot, dataset: toy.dataset, terms: [] });
    const run = async (seed: number, epoch: number) => collect(trainBatches(index, epoch, { batchSize: 4, size: 16, seed, withMasks: false, concurrency: 5 }));
    const a = await run(1, 0), b = await run(1, 0);
    expect(a.map((x) => x.ids)).toEqual(b.map((x) => x.ids));
    a.forEach((x, i) => expect(Buffer.from(x.x.buffer).equals(Buffer.from(b[i].x.buffer))).toBe(true));
    expect([...epochOrder(7, 1, 0)]).not.toEqual([...epochOrder(7, 2, 0)]);
    expect([...epochOrder(7, 1, 0)]).not.toEqual([...epochOrder(7, 1, 1)]);
    expect([...epochOrder(7, 1, 0)].sort()).toEqual([0, 1, 2, 3, 4, 5, 6]);
    expect(pickVariant(['v0', 'v1', 'v2'], 4)).toBe('v1');
    expect(pickVariant([], 4)).toBeNull();
  });

  it('treats a corpus without corpus.json as unfinished, and refuses one made from another source manifest', async () => {
    const src = join(toy.corporaRoot, toy.dataset, 'source');
    const { metadata } = await readSourceManifest(src);
    const w = new ManifestWriter(join(toy.corporaRoot, toy.dataset, 'cf-unfinished', 'manifest'), 'corpus', { ...metadata, kind: 'corpus' });
    await w.close();
    const stale = join(toy.corporaRoot, toy.dataset, 'cf-stale');
    await writeToyCorpus(stale, { ...metadata, kind: 'corpus', config: { method: 'cf-stale' } }, [], 5);
    const info = JSON.parse(await readFile(join(stale, 'corpus.json'), 'utf8'));
    await writeFile(join(stale, 'corpus.json'), JSON.stringify({ ...info, source_digest: 'not-the-digest' }));
    expect(await missingCorpora(toy.corporaRoot, toy.dataset, ['cf-tile', 'cf-unfinished', 'cf-nothing', 'cf-stale'])).toEqual(['cf-unfinished', 'cf-nothing']);
    const terms = (f: string) => parseMethod(f).cf;
    await expect(loadDatasetIndex({ corporaRoot: toy.corporaRoot, dataset: toy.dataset, terms: terms('cf-unfinished') }))
      .rejects.toThrow(/cf-unfinished is unfinished: 1 manifest part\(s\) but no corpus\.json[\s\S]*fix: finish it .*generate --source .* --methods cf-unfinished/);
    await expect(loadDatasetIndex({ corporaRoot: toy.corporaRoot, dataset: toy.dataset, terms: terms('cf-stale') })).rejects.toThrow(/another version of the source manifest[\s\S]*--force/);
  });

  it('names the command to run when the dataset is missing', async () => {
    await expect(loadDatasetIndex({ corporaRoot: toy.corporaRoot, dataset: 'nope', terms: [] })).rejects.toThrow(/make dataset DATASET=nope/);
  });
});

describe('dataset root of a source manifest', () => {
  it('a relative config.root is found from the project folder, then beside the corpora root; never from the current folder', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'dsroot-'));
    await mkdir(join(dir, 'data', 'mine'), { recursive: true });
    expect(await resolveDatasetRoot('trainer', join(dir, 'corpora'))).toBe(join(PROJECT_ROOT, 'trainer'));
    expect(await resolveDatasetRoot('data/mine', join(dir, 'corpora'))).toBe(join(dir, 'data', 'mine'));
    expect(await resolveDatasetRoot(join(dir, 'data', 'mine'), '/elsewhere/corpora')).toBe(join(dir, 'data', 'mine'));
    // a folder that exists only relative to the current folder is not found
    await mkdir(join(dir, 'cwd-only'));
    const saved = process.cwd();
    try {
      process.chdir(dir);
      expect(await resolveDatasetRoot('cwd-only', '/elsewhere/corpora')).toBeNull();
    } finally {
      process.chdir(saved);
    }
  });
});
