import * as tf from '@tensorflow/tfjs-core';
import { createHash } from 'node:crypto';
import { mkdir, mkdtemp, readFile, readdir, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import { beforeAll, describe, expect, it } from 'vitest';
import { MANIFEST_FORMAT, MANIFEST_FORMAT_VERSION, type SourceRow } from '../manifests/schema.ts';
import { rngFor } from '../manifests/rng.ts';
import { writeManifestShard } from '../manifests/writer.ts';
import { parseCard, type ModelCard } from '../common/model-card.ts';
import { UserError } from '../manifests/errors.ts';
import { OnnxInpainter } from '../pipeline/inpaint/runner.ts';
import { initBackend } from '../trainer/backend.ts';
import { packPairs } from '../trainer/inpainter/batch.ts';
import { runInpainterCli } from '../trainer/inpainter/cli.ts';
import { loadBackgrounds } from '../trainer/inpainter/data.ts';
import { ourCard, writeModel } from '../trainer/inpainter/export.ts';
import { boxToMask, growMask, MaskIntegral, sampleBackgroundHole } from '../trainer/inpainter/holes.ts';
import { maskedL1 } from '../trainer/inpainter/loss.ts';

beforeAll(async () => {
  await initBackend({ backend: 'cpu', log: () => {} });
});

describe('background holes', () => {
  it('never touch the object, and the integral counts object pixels exactly', () => {
    const W = 20, H = 14;
    const object = boxToMask({ x: 6, y: 3, w: 5, h: 7 }, W, H);
    const integral = new MaskIntegral(object);
    const rng = rngFor('holes-test');
    let found = 0;
    for (let t = 0; t < 300; t++) {
      const b = { x: rng.int(W), y: rng.int(H), w: 0, h: 0 };
      b.w = 1 + rng.int(W - b.x);
      b.h = 1 + rng.int(H - b.y);
      let brute = 0;
      for (let y = b.y; y < b.y + b.h; y++) for (let x = b.x; x < b.x + b.w; x++) brute += object.data[y * W + x];
      expect(integral.count(b)).toBe(brute);
      const hole = sampleBackgroundHole(integral, rng, { minFrac: 0.1, maxFrac: 0.4, tries: 30 });
      if (!hole) continue;
      found++;
      expect(hole.x).toBeGreaterThanOrEqual(0);
      expect(hole.x + hole.w).toBeLessThanOrEqual(W);
      expect(hole.y + hole.h).toBeLessThanOrEqual(H);
      expect(integral.count(hole)).toBe(0);
    }
    expect(found).toBeGreaterThan(250);
  });

  it('returns null when the object leaves no room', () => {
    const full = new MaskIntegral(boxToMask({ x: 0, y: 0, w: 8, h: 8 }, 8, 8));
    expect(sampleBackgroundHole(full, rngFor('x'), { minFrac: 0.2, maxFrac: 0.5, tries: 10 })).toBeNull();
  });

  it('grows a mask by r in the square neighbourhood', () => {
    const g = growMask(boxToMask({ x: 2, y: 2, w: 1, h: 1 }, 5, 5), 1);
    expect(Array.from(g.data)).toEqual([0, 0, 0, 0, 0, 0, 1, 1, 1, 0, 0, 1, 1, 1, 0, 0, 1, 1, 1, 0, 0, 0, 0, 0, 0]);
  });
});

describe('training batches and loss', () => {
  const img = { width: 2, height: 2, data: Uint8Array.from([0, 255, 51, 102, 0, 0, 0, 0, 0, 255, 255, 255]) };
  const bg = { id: 'a', image: img, avoid: new MaskIntegral(boxToMask({ x: 0, y: 0, w: 0, h: 0 }, 2, 2)) };
  it('packs [-1,1] pixels and the hole, mirroring both together', () => {
    const plain = packPairs([bg], [{ index: 0, hole: { x: 0, y: 0, w: 1, h: 2 }, flip: false }], 2);
    expect(Array.from(plain.image.slice(0, 3))).toEqual([-1, 1, Math.fround(51 / 127.5 - 1)]);
    expect(Array.from(plain.mask)).toEqual([1, 0, 1, 0]);
    const flipped = packPairs([bg], [{ index: 0, hole: { x: 0, y: 0, w: 1, h: 2 }, flip: true }], 2);
    expect(Array.from(flipped.image.slice(0, 3))).toEqual(Array.from(plain.image.slice(3, 6)));
    expect(Array.from(flipped.mask)).toEqual([0, 1, 0, 1]);
  });

  it('masked L1 matches a hand computation', () => {
    // 1×2×1×1: errors 0.5 (in the hole) and 2 (outside)
    const pred = tf.tensor4d([0.5, -1], [1, 1, 2, 1]);
    const target = tf.tensor4d([0, 1], [1, 1, 2, 1]);
    const mask = tf.tensor4d([1, 0], [1, 1, 2, 1]);
    const l = maskedL1(pred, target, mask);
    expect(l.hole.dataSync()[0]).toBeCloseTo(0.5, 6);
    expect(l.outside.dataSync()[0]).toBeCloseTo(2, 6);
  });
});

/** A tiny dataset on disk: 16×16 PNGs, a dark object box on a smooth gradient background, a source manifest. */
async function tinyDataset(dir: string): Promise<string> {
  const root = join(dir, 'data');
  await mkdir(join(root, 'img'), { recursive: true });
  const rows: SourceRow[] = [];
  for (let i = 0; i < 8; i++) {
    const S = 16;
    const px = new Uint8Array(S * S * 3);
    const box = { x: (i * 3) % 8, y: (i * 5) % 8, w: 6, h: 6 };
    for (let y = 0; y < S; y++) for (let x = 0; x < S; x++) {
      const inObj = x >= box.x && x < box.x + box.w && y >= box.y && y < box.y + box.h;
      px.set(inObj ? [20, 20, 20] : [100 + 8 * x, 60 + 4 * y, 150], (y * S + x) * 3);
    }
    const path = `img/${i}.png`;
    await writeFile(join(root, path), await sharp(px, { raw: { width: S, height: S, channels: 3 } }).png().toBuffer());
    rows.push({
      id: String(i), split: i < 6 ? 'train' : 'val', label: i % 2, class_name: i % 2 ? 'b' : 'a', path, mask_path: null, mask_format: null,
      boxes: [box.x, box.y, box.w, box.h], group: null, place: null, location: null, variant: null, width: S, height: S, status: 'ok', error: null,
    });
  }
  // One row without any annotation: the loader must skip it (its background cannot be told apart).
  rows.push({ ...rows[0], id: 'nobox', boxes: null });
  const source = join(dir, 'corpora', 'tiny', 'source');
  await writeManifestShard(join(source, 'source-00000.arrow'), 'source', {
    format: MANIFEST_FORMAT, format_version: MANIFEST_FORMAT_VERSION, kind: 'source', dataset: 'tiny', class_names: ['a', 'b'],
    tool_version: 'test', seed: 0, config: { root },
  }, rows);
  return source;
}

describe('the model card the trainer writes', () => {
  const card = ourCard({ name: 'cagan', file: 'cagan.onnx', size: 64, provenance: 'test run' });

  it('passes the shared schema unchanged', () => {
    // toEqual: parseCard drops nothing and adds nothing, so the file on disk is exactly what the runner reads
    expect(parseCard(card, 'cagan.card.json')).toEqual(card);
  });

  it('is validated before anything is written', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'card-'));
    const bad = { ...card, size: { fixed: [0, 64] } } as ModelCard;
    await expect(writeModel(join(dir, 'm.onnx'), new Uint8Array([1, 2, 3]), bad)).rejects.toThrow(UserError);
    await expect(writeModel(join(dir, 'm.onnx'), new Uint8Array([1, 2, 3]), bad)).rejects.toThrow(/invalid model card: "size.fixed\[0\]"/);
    expect(await readdir(dir)).toEqual([]); // neither the card nor the ONNX file
    const path = await writeModel(join(dir, 'm.onnx'), new Uint8Array([1, 2, 3]), card);
    expect(path).toBe(join(dir, 'm.card.json'));
    expect(parseCard(JSON.parse(await readFile(path, 'utf8')), path)).toEqual(card);
  });
});

describe('make inpainter end to end (tiny data, cpu backend)', () => {
  it('loads backgrounds, trains, exports a card + ONNX the runner accepts, and is deterministic', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'inpainter-'));
    const source = await tinyDataset(dir);
    const set = await loadBackgrounds({ sourceDir: source, size: 16, maxTrain: 100, maxHeldOut: 10, seed: 0 });
    expect(set.train.length).toBe(6);
    expect(set.heldOut.length).toBe(2);
    expect(set.skipped).toBe(1);
    expect(set.heldOutSplit).toBe('val');

    const base = {
      dataset: 'tiny', source, corporaRoot: join(dir, 'corpora'), steps: 3, batch: 2, size: 16, width: 4, lr: 1e-3, seed: 7,
      backend: 'cpu' as const, maxImages: 100, heldOut: 4, holeMin: 0.2, holeMax: 0.4,
    };
    const a = await runInpainterCli({ ...base, out: join(dir, 'models', 'a.onnx') });
    const b = await runInpainterCli({ ...base, out: join(dir, 'models', 'b.onnx') });
    const sha = async (f: string) => createHash('sha256').update(await readFile(f)).digest('hex');
    expect(await sha(a.onnx)).toBe(await sha(b.onnx)); // same seed → same bytes (the file name is not in the model)
    expect(Number.isFinite(a.heldOutL1)).toBe(true);

    const card = parseCard(JSON.parse(await readFile(a.card, 'utf8')), a.card);
    expect(card).toMatchObject({ layout: 'separate-nchw', size: { fixed: [16, 16] }, valueRange: [-1, 1], file: 'a.onnx', name: 'a' });
    expect(card.provenance).toMatch(/trained on tiny .*steps=3, batch=2, size=16, width=4, lr=0.001, seed=7/);
    expect(card.provenance).not.toMatch(/20\d\d-\d\d-\d\d/); // no dates: reruns give identical cards

    const runner = await OnnxInpainter.load(a.card);
    try {
      const img = { width: 24, height: 20, data: Uint8Array.from({ length: 24 * 20 * 3 }, (_, i) => (i * 7) % 256) };
      const hole = { width: 24, height: 20, data: new Uint8Array(24 * 20) };
      for (let y = 5; y < 12; y++) for (let x = 3; x < 15; x++) hole.data[y * 24 + x] = 1;
      const [out] = await runner.inpaint([img], [hole]);
      let outside = 0;
      for (let p = 0; p < 24 * 20; p++) if (!hole.data[p]) for (let c = 0; c < 3; c++) outside += out.data[p * 3 + c] !== img.data[p * 3 + c] ? 1 : 0;
      expect(outside).toBe(0);
    } finally {
      await runner.close();
    }
  });
});
