import { describe, it, expect, beforeAll } from 'vitest';
import { mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openManifest, type EvalRow, type Mask, type SourceRow } from '../manifests/index.ts';
import { boundingBoxOfMask, boxesToMask } from '../manifests/masks.ts';
import { tileInfill } from '../pipeline/infills/index.ts';
import { runStressTest, STRESS_DEFAULTS, type StressOptions, type StressSummary } from '../pipeline/stress/run.ts';
import { noForeground, onlyBackgroundBlack, onlyForeground, pasteObject, swappedVariant } from '../pipeline/stress/variants.ts';
import { verifyCorpus } from '../pipeline/verify.ts';
import { makeStressFixture, objectOf, rawOf, SH, SW, type StressFixture } from './stress-fixture.ts';

/**
 * Every stress-test variant's pixels against its definition (docs/stress-test.md), on a 24×16 fixture with
 * segmentation masks and box-only rows: the object byte-identical where it is kept, black where it is blacked out,
 * the cf-tile fill in the box for only_bg_t, and the donor's object-free background wherever the background is
 * swapped. Then the corpus as a corpus: `verify`, resume, determinism.
 */

let fx: StressFixture;
let summary: StressSummary;
let rows: EvalRow[];
const quiet = { start() {}, tick() {}, stop() {} };

function options(fixture: StressFixture, extra: Partial<StressOptions> = {}): StressOptions {
  return {
    ...STRESS_DEFAULTS, dataset: fixture.dataset, corporaRoot: fixture.corporaRoot, dataRoot: fixture.root, sourceDir: fixture.sourceDir,
    shardSize: 4, progress: quiet, log: () => {}, ...extra,
  } as StressOptions;
}

/** The object mask of a source row as the stress test uses it (segmentation, else the box). */
function objectMask(i: number, boxOnly: boolean): Mask {
  const on = objectOf(i, boxOnly);
  const m: Mask = { width: SW, height: SH, data: new Uint8Array(SW * SH) };
  for (let y = 0; y < SH; y++) for (let x = 0; x < SW; x++) m.data[y * SW + x] = on(x, y) ? 1 : 0;
  return m;
}

const indexOf = (r: { source_id: string } | SourceRow): number => Number(('source_id' in r ? r.source_id : r.id).split('/').pop());
const isBoxOnly = (i: number) => i % 5 === 4;
const boxOf = (m: Mask): Mask => { const b = boundingBoxOfMask(m)!; return boxesToMask([b.x, b.y, b.w, b.h], m.width, m.height); };
const px = (buf: Uint8Array, p: number) => [buf[p * 3], buf[p * 3 + 1], buf[p * 3 + 2]];

beforeAll(async () => {
  fx = await makeStressFixture(await mkdtemp(join(tmpdir(), 'stress-')), { perClass: 3 });
  summary = await runStressTest(options(fx));
  const m = await openManifest<EvalRow>(join(summary.dir, 'manifest'));
  expect(m.metadata.kind).toBe('eval');
  rows = [];
  for await (const r of m.rows()) rows.push(r);
});

describe('stress-test variants, pixel by pixel', () => {
  it('builds every variant of every test image, and nothing of train or val', () => {
    const test = fx.rows.filter((r) => r.split === 'test');
    expect(summary.splits).toEqual(['test']);
    expect(summary.attribute).toBe('place');
    expect(summary.variants).toEqual(['original', 'only_fg', 'no_fg', 'only_bg_b', 'only_bg_t', 'mixed_same', 'mixed_rand', 'mixed_next', 'attr_flip']);
    expect(rows.length).toBe(test.length * 9);
    expect(rows.every((r) => r.split === 'test' && r.status === 'ok')).toBe(true);
    expect(new Set(rows.map((r) => r.id)).size).toBe(rows.length);
    expect(rows.filter((r) => isBoxOnly(indexOf(r))).every((r) => r.mask_kind === 'box')).toBe(true);
    expect(rows.filter((r) => !isBoxOnly(indexOf(r))).every((r) => r.mask_kind === 'seg')).toBe(true);
  });

  it('original, only_fg, no_fg, only_bg_b and only_bg_t match their definitions', async () => {
    for (const r of rows.filter((x) => !x.donor_id)) {
      const i = indexOf(r);
      const src = await rawOf(join(fx.root, `images/${i}.png`));
      const out = await rawOf(join(summary.dir, r.image_path!));
      const obj = objectMask(i, isBoxOnly(i));
      const box = boxOf(obj);
      for (let p = 0; p < SW * SH; p++) {
        const s = px(src, p), o = px(out, p);
        switch (r.variant) {
          case 'original': expect(o).toEqual(s); break;
          case 'only_fg': expect(o).toEqual(obj.data[p] ? s : [0, 0, 0]); break;
          case 'no_fg': expect(o).toEqual(obj.data[p] ? [0, 0, 0] : s); break;
          case 'only_bg_b': expect(o).toEqual(box.data[p] ? [0, 0, 0] : s); break;
          case 'only_bg_t': if (!box.data[p]) expect(o).toEqual(s); break;
          default: throw new Error(`unexpected own variant ${r.variant}`);
        }
      }
      if (r.variant === 'only_bg_t') {
        // inside the box: the cf-tile infill (largest background rectangle, tiled from the top-left)
        const t = tileInfill({ width: SW, height: SH, data: new Uint8Array(src) }, box, 'maxrect');
        expect(t.status).toBe('ok');
        if (t.status === 'ok') expect(Buffer.from(out)).toEqual(Buffer.from(t.image.data));
        // and no object pixel survives in it
        expect([...Array(SW * SH).keys()].filter((p) => box.data[p]).some((p) => px(out, p).join() === px(src, p).join() && obj.data[p])).toBe(false);
      }
    }
  });

  it('mixed_* and attr_flip: the object byte-identical, the donor\'s object-free background everywhere else', async () => {
    const byId = new Map(fx.rows.map((r) => [r.id, r]));
    const swapped = rows.filter((r) => r.donor_id);
    expect(swapped.length).toBe(4 * fx.rows.filter((r) => r.split === 'test').length);
    for (const r of swapped) {
      const i = indexOf(r);
      const donor = byId.get(r.donor_id!)!;
      const j = indexOf(donor);
      const src = await rawOf(join(fx.root, `images/${i}.png`));
      const dsrc = await rawOf(join(fx.root, `images/${j}.png`));
      const out = await rawOf(join(summary.dir, r.image_path!));
      const obj = objectMask(i, isBoxOnly(i));
      const bg = tileInfill({ width: SW, height: SH, data: new Uint8Array(dsrc) }, boxOf(objectMask(j, isBoxOnly(j))), 'maxrect');
      expect(bg.status).toBe('ok');
      if (bg.status !== 'ok') continue;
      for (let p = 0; p < SW * SH; p++) expect(px(out, p)).toEqual(obj.data[p] ? px(src, p) : px(bg.image.data, p));
      expect(r.donor_label).toBe(donor.label);
      expect(r.place).toBe(donor.place); // the background shown is the donor's
      expect(donor.id).not.toBe(r.source_id);
      expect(donor.split).toBe('test');
      if (r.variant === 'mixed_same') expect(donor.label).toBe(r.label);
      if (r.variant === 'mixed_rand') expect(donor.label).not.toBe(r.label);
      if (r.variant === 'mixed_next') expect(donor.label).toBe((r.label + 1) % 3);
      if (r.variant === 'attr_flip') expect(donor.place).not.toBe(byId.get(r.source_id)!.place);
    }
  });

  it('the pure variant functions on a hand-made 4×3 image', () => {
    const img = { width: 4, height: 3, data: Uint8Array.from({ length: 36 }, (_, k) => k + 1) };
    const obj: Mask = { width: 4, height: 3, data: Uint8Array.from([0, 1, 0, 0, 0, 1, 1, 0, 0, 0, 0, 0]) };
    const fg = onlyForeground(img, obj).data, nofg = noForeground(img, obj).data;
    for (let p = 0; p < 12; p++) for (let c = 0; c < 3; c++) {
      expect(fg[p * 3 + c]).toBe(obj.data[p] ? img.data[p * 3 + c] : 0);
      expect(nofg[p * 3 + c]).toBe(obj.data[p] ? 0 : img.data[p * 3 + c]);
    }
    const box = boxOf(obj);
    expect(Array.from(box.data)).toEqual([0, 1, 1, 0, 0, 1, 1, 0, 0, 0, 0, 0]);
    expect(Array.from(onlyBackgroundBlack(img, box).data.subarray(3, 9))).toEqual([0, 0, 0, 0, 0, 0]);
    const bg = { width: 4, height: 3, data: new Uint8Array(36).fill(200) };
    const pasted = pasteObject(img, obj, bg).data;
    expect(Array.from(pasted.subarray(3, 6))).toEqual([4, 5, 6]);
    expect(Array.from(pasted.subarray(0, 3))).toEqual([200, 200, 200]);
    // a mask covering everything leaves no background to swap: skipped with the reason, never a silent copy
    const all: Mask = { width: 4, height: 3, data: new Uint8Array(12).fill(1) };
    expect(swappedVariant(img, all, bg, obj)).toMatchObject({ status: 'skipped', reason: expect.stringMatching(/no background/) });
    expect(() => pasteObject(img, obj, { width: 3, height: 3, data: new Uint8Array(27) })).toThrow(/3x3/);
  });
});

describe('the stress-test corpus is a corpus', () => {
  it('verify passes, and catches a modified image', async () => {
    const ok = await verifyCorpus(summary.dir);
    expect(ok.ok).toBe(true);
    expect(ok.checked).toBe(rows.length);
    const victim = join(summary.dir, rows[5].image_path!);
    const bytes = await readFile(victim);
    await writeFile(victim, Buffer.concat([bytes.subarray(0, bytes.length - 1), Buffer.from([bytes[bytes.length - 1] ^ 1])]));
    const bad = await verifyCorpus(summary.dir);
    expect(bad.ok).toBe(false);
    expect(bad.modified).toEqual([rows[5].image_path]);
    await writeFile(victim, bytes);
  });

  it('a rerun resumes every shard and keeps the corpus id; other concurrency and shards give the same rows and bytes', async () => {
    const again = await runStressTest(options(fx));
    expect(again.resumedShards).toBe(again.shards);
    expect(again.imagesWritten).toBe(0);
    expect(again.corpusId).toBe(summary.corpusId);
    // a copy of the dataset elsewhere (its source digest differs: the manifest records the root), one row at a time
    const fx2 = await makeStressFixture(await mkdtemp(join(tmpdir(), 'stress2-')), { perClass: 3 });
    const other = await runStressTest(options(fx2, { concurrency: 1, shardSize: 5 }));
    const m = await openManifest<EvalRow>(join(other.dir, 'manifest'));
    const rows2: EvalRow[] = [];
    for await (const r of m.rows()) rows2.push(r);
    const key = (r: EvalRow) => `${r.id} ${r.donor_id} ${r.sha256}`;
    expect(rows2.map(key)).toEqual(rows.map(key));
  });

  it('an interrupted run resumes from its finished shards and ends with the same corpus', async () => {
    const fx3 = await makeStressFixture(await mkdtemp(join(tmpdir(), 'stress3-')), { perClass: 3 });
    const first = await runStressTest(options(fx3));
    const fx4 = await makeStressFixture(await mkdtemp(join(tmpdir(), 'stress4-')), { perClass: 3 });
    await expect(runStressTest(options(fx4, { onShardDone: (i) => { if (i === 0) throw new Error('killed after shard 0'); } }))).rejects.toThrow(/killed/);
    const resumed = await runStressTest(options(fx4));
    expect(resumed.resumedShards).toBe(1);
    expect(resumed.shards).toBe(first.shards);
    const keys = async (d: string) => {
      const out: string[] = [];
      for await (const r of (await openManifest<EvalRow>(join(d, 'manifest'))).rows()) out.push(`${r.id} ${r.donor_id} ${r.sha256}`);
      return out;
    };
    expect(await keys(resumed.dir)).toEqual(await keys(first.dir));
    expect((await verifyCorpus(resumed.dir)).ok).toBe(true);
  });

  it('another seed redraws the donors; another config is refused without --force', async () => {
    await expect(runStressTest(options(fx, { seed: 7 }))).rejects.toThrow(/another configuration/);
    const s7 = await runStressTest(options(fx, { seed: 7, force: true }));
    expect(s7.corpusId).not.toBe(summary.corpusId);
    await runStressTest(options(fx, { force: true })); // leave it as the other tests found it
  });
});
