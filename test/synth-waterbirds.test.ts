import { describe, it, expect } from 'vitest';
import { join } from 'node:path';
import { ensureSourceManifest } from '../pipeline/datasets/index.ts';
import { resolveSynthOptions } from '../pipeline/synth/options.ts';
import { waterbirdsPlacement, waterbirdsSamples } from '../pipeline/synth/waterbirds.ts';
import { renderSprite, ALPHA_OBJECT_THRESHOLD } from '../pipeline/synth/sprites.ts';
import { placementMask } from '../pipeline/synth/compose.ts';
import { loadSegMask, boundingBoxOfMask } from '../manifests/masks.ts';
import { manifestDigest, readSourceManifest } from '../manifests/index.ts';
import { hashTree, tempDir } from './fixtures/datasets.ts';

const tiny = { size: 32, train: 40, val: 12, test: 16 };

describe('synth-waterbirds', () => {
  it('same seed → byte-identical files and manifest; another seed → different images', async () => {
    const dataRoot = await tempDir(), corporaRoot = await tempDir();
    const run = async (seed: number) => {
      const r = await ensureSourceManifest('synth-waterbirds', { dataRoot, corporaRoot, seed, synth: tiny, force: true });
      return { files: await hashTree(join(dataRoot, 'synth-waterbirds')), digest: await manifestDigest(r.dir) };
    };
    const a = await run(7);
    const b = await run(7);
    expect(Object.keys(a.files).length).toBe(2 * (40 + 12 + 16) + 2); // images + masks + metadata.csv + synth.json
    expect(b.files).toEqual(a.files);
    expect(b.digest).toBe(a.digest);
    const c = await run(8);
    expect(c.files['metadata.csv']).not.toBe(a.files['metadata.csv']);
    expect(c.digest).not.toBe(a.digest);
  });

  it('train follows the correlation knob, val and test are balanced over the four groups', async () => {
    const dataRoot = await tempDir(), corporaRoot = await tempDir();
    const r = await ensureSourceManifest('synth-waterbirds', { dataRoot, corporaRoot, seed: 1, synth: { ...tiny, train: 200, correlation: 0.8 } });
    const { rows, metadata } = await readSourceManifest(r.dir);
    expect(metadata.config).toMatchObject({ adapter: 'waterbirds', synth: { correlation: 0.8, train: 200, seed: 1 } });
    expect(rows.every((x) => x.status === 'ok')).toBe(true);
    const train = rows.filter((x) => x.split === 'train');
    expect(train).toHaveLength(200);
    const agree = train.filter((x) => x.place === x.label).length / train.length;
    expect(Math.abs(agree - 0.8)).toBeLessThanOrEqual(0.01);
    expect(train.filter((x) => x.label === 1)).toHaveLength(100);
    for (const split of ['val', 'test']) {
      const counts: Record<string, number> = {};
      for (const x of rows.filter((y) => y.split === split)) counts[x.group!] = (counts[x.group!] ?? 0) + 1;
      const n = split === 'val' ? 12 : 16;
      expect(counts).toEqual({ 'y=0,place=0': n / 4, 'y=0,place=1': n / 4, 'y=1,place=0': n / 4, 'y=1,place=1': n / 4 });
    }
  });

  it('segmentation masks are exactly the placed sprite alpha (>= 128); boxes are their bounding boxes', async () => {
    const dataRoot = await tempDir(), corporaRoot = await tempDir();
    const r = await ensureSourceManifest('synth-waterbirds', { dataRoot, corporaRoot, seed: 2, synth: tiny });
    const { rows } = await readSourceManifest(r.dir);
    const o = resolveSynthOptions('synth-waterbirds', { seed: 2, ...tiny });
    const samples = waterbirdsSamples(o);
    for (const row of rows.slice(0, 12)) {
      const s = samples[Number(row.id) - 1];
      expect([s.y, s.place, ['train', 'val', 'test'][s.split]]).toEqual([row.label, row.place, row.split]);
      const p = waterbirdsPlacement(o, s);
      const sprite = await renderSprite(p.emoji, p.side);
      const want = placementMask(sprite, p, o.size, o.size);
      // independent recount straight from the sprite's alpha channel
      let opaque = 0;
      for (let i = 3; i < sprite.rgba.length; i += 4) if (sprite.rgba[i] >= ALPHA_OBJECT_THRESHOLD) opaque++;
      expect(want.data.reduce((a, b) => a + b, 0)).toBe(opaque); // sprites are placed fully inside the image
      const got = await loadSegMask(join(dataRoot, 'synth-waterbirds'), row);
      expect(Buffer.from(got!.data).equals(Buffer.from(want.data))).toBe(true);
      const b = boundingBoxOfMask(want)!;
      expect(row.boxes).toEqual([b.x, b.y, b.w, b.h]);
      expect(row.path.startsWith(`${row.path.split('/')[0]}/`)).toBe(true);
      expect(row.path).toMatch(/^\d{3}\.[A-Za-z_]+\/[A-Za-z_]+_\d{4}_\d{6}\.jpg$/);
    }
  });
});
