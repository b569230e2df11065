import { describe, it, expect, beforeAll } from 'vitest';
import { cp, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import { openManifest, sha256Hex, type CorpusRow } from '../manifests/index.ts';
import { GENERATE_DEFAULTS, runGenerate, type GenerateOptions, createProgress } from '../pipeline/generate/index.ts';
import { getInfill } from '../pipeline/infills/index.ts';
import { verifyCorpus } from '../pipeline/verify.ts';
import { writeSampleGrid } from '../pipeline/sample-grid.ts';
import { decodeImageFile } from '../pipeline/decode.ts';
import { resizeMaskAnyOver } from '../pipeline/masks-ops.ts';
import { boxMaskOf } from '../manifests/masks.ts';
import { newMask } from '../manifests/pixels.ts';
import { H, W, decodeRaw, makeFixture, objectAt, rawImage, treeHashes, type Fixture } from './generate-fixture.ts';

function options(sourceDir: string, extra: Partial<GenerateOptions> = {}): GenerateOptions {
  return {
    ...GENERATE_DEFAULTS, splits: ['train'], params: {}, size: null, sourceDir, shardSize: 4,
    progress: createProgress({ quiet: true }), log: () => {}, ...extra,
  };
}

/** A second, empty corpora folder holding a copy of the fixture's source manifest. */
async function cloneSource(fx: Fixture): Promise<string> {
  const tmp = await mkdtemp(join(tmpdir(), 'gen2-'));
  const dir = join(tmp, 'corpora', 'toy', 'source');
  await cp(fx.sourceDir, dir, { recursive: true });
  return dir;
}

async function corpusRows(dir: string): Promise<CorpusRow[]> {
  const m = await openManifest<CorpusRow>(join(dir, 'manifest'));
  const rows: CorpusRow[] = [];
  for await (const r of m.rows()) rows.push(r);
  return rows;
}

const index = (r: CorpusRow) => Number(r.source_id.split('/')[1]);
const objectMask = (i: number) => { const m = newMask(W, H); for (let y = 0; y < H; y++) for (let x = 0; x < W; x++) m.data[y * W + x] = objectAt(i, x, y) ? 1 : 0; return m; };

describe('generate on a tiny dataset', () => {
  let fx: Fixture;
  beforeAll(async () => {
    fx = await makeFixture(12);
    const s = await runGenerate(options(fx.sourceDir, { variants: 2 }));
    expect(s.exitCode).toBe(0);
  });
  const dirOf = (m: string) => join(fx.tmp, 'corpora', 'toy', m);

  it('writes each method\'s rows, files and hashes; only the hole (CF) or the background (F) changes', async () => {
    for (const method of ['cf-grey', 'cf-random', 'cf-shuffle', 'cf-tile', 'f-random', 'f-shuffle', 'f-mixed-rand']) {
      const rows = await corpusRows(dirOf(method));
      const variants = method === 'cf-grey' || method === 'cf-tile' ? 1 : 2;
      expect(rows.length, method).toBe(12 * variants);
      expect(rows.every((r) => r.split === 'train' && r.status === 'ok'), method).toBe(true);
      for (const r of rows) {
        expect(r.id).toBe(`${r.source_id}/${method}/${r.variant}`);
        expect(r.non_y).toBe(method.startsWith('cf-'));
        expect(r.mask_kind).toBe(method.startsWith('cf-') ? 'box' : 'seg');
        const file = join(dirOf(method), r.image_path!);
        expect(sha256Hex(await readFile(file))).toBe(r.sha256);
        const out = await decodeRaw(file);
        const src = rawImage(index(r), r.label);
        const obj = objectMask(index(r));
        const region = method.startsWith('cf-') ? boxMaskOf(obj) : { ...obj, data: obj.data.map((v) => 1 - v) };
        let changedInside = 0, changedOutside = 0, notGrey = 0;
        for (let p = 0; p < W * H; p++) {
          for (let c = 0; c < 3; c++) {
            const diff = out[p * 3 + c] !== src[p * 3 + c];
            if (!region.data[p]) changedOutside += diff ? 1 : 0;
            else { changedInside += diff ? 1 : 0; notGrey += out[p * 3 + c] !== 128 ? 1 : 0; }
          }
        }
        expect(changedOutside, `${method} ${r.id}`).toBe(0);
        expect(changedInside, `${method} ${r.id}`).toBeGreaterThan(0);
        if (method === 'cf-grey') expect(notGrey).toBe(0);
      }
    }
  });

  it('gives random methods a different draw per variant, and records params', async () => {
    const rows = await corpusRows(dirOf('cf-random'));
    const byId = new Map(rows.map((r) => [`${r.source_id}#${r.variant}`, r]));
    for (const r of rows.filter((x) => x.variant === 0)) expect(byId.get(`${r.source_id}#1`)!.sha256).not.toBe(r.sha256);
    expect(JSON.parse(rows[0].params)).toEqual({ grid: [1, 1], sigma: 0.2 });
  });

  it('fills Mixed-Rand backgrounds from the other class only', async () => {
    const rows = await corpusRows(dirOf('f-mixed-rand'));
    for (const r of rows) {
      const out = await decodeRaw(join(dirOf('f-mixed-rand'), r.image_path!));
      const obj = objectMask(index(r));
      let wrong = 0, bg = 0;
      for (let p = 0; p < W * H; p++) {
        if (obj.data[p]) continue;
        bg++;
        const [R, , B] = [out[p * 3], out[p * 3 + 1], out[p * 3 + 2]];
        // class 0 backgrounds are red (R ≥ 180, B < 60), class 1 blue: the donor's tiled background must be the other one
        if (r.label === 0 ? !(B >= 180 && R < 60) : !(R >= 180 && B < 60)) wrong++;
      }
      expect(bg).toBeGreaterThan(300);
      expect(wrong, r.id).toBe(0);
    }
  });

  it('stamps every part with the corpus id and writes corpus.json', async () => {
    const info = JSON.parse(await readFile(join(dirOf('cf-tile'), 'corpus.json'), 'utf8'));
    const m = await openManifest(join(dirOf('cf-tile'), 'manifest'));
    expect(m.shards.length).toBe(3);
    expect(m.metadata.corpus_id).toBe(info.corpus_id);
    expect(m.metadata.source_digest).toMatch(/^[0-9a-f]{64}$/);
    expect(m.metadata.config).toMatchObject({ method: 'cf-tile', variants: 1, shard_size: 4, splits: ['train'], params: { mode: 'maxrect' } });
    expect(info.counts).toEqual({ ok: 12, skipped: 0, error: 0 });
  });

  it('verify passes, then catches a modified and a deleted file', async () => {
    const dir = dirOf('cf-shuffle');
    expect((await verifyCorpus(dir)).ok).toBe(true);
    const rows = await corpusRows(dir);
    const [a, b] = [rows[0].image_path!, rows[5].image_path!];
    const bytes = await readFile(join(dir, a));
    bytes[bytes.length - 20] ^= 1;
    await writeFile(join(dir, a), bytes);
    await rm(join(dir, b));
    const rep = await verifyCorpus(dir);
    expect(rep.ok).toBe(false);
    expect(rep.modified).toEqual([a]);
    expect(rep.missing).toEqual([b]);
  });

  it('writes a contact sheet: originals, then one column per method', async () => {
    const out = join(fx.tmp, 'grid.png');
    await writeSampleGrid({ base: join(fx.tmp, 'corpora', 'toy'), methods: ['f-random', 'cf-grey', 'cf-tile'], rows: 3, cell: 64, seed: 0, out });
    const meta = await sharp(out).metadata();
    expect([meta.width, meta.height, meta.channels]).toEqual([4 * 64, 22 + 3 * 64, 3]);
    // column 2 is CF grey (CF first): its cell holds mid-grey pixels (blurred a little by the resize); the
    // original's cell beside it has none
    const { data } = await sharp(out).raw().toBuffer({ resolveWithObject: true });
    const greyIn = (x0: number) => {
      let n = 0;
      for (let y = 22; y < 22 + 3 * 64; y++) for (let x = x0; x < x0 + 64; x++) {
        const p = (y * 256 + x) * 3;
        if ([0, 1, 2].every((c) => Math.abs(data[p + c] - 128) <= 6)) n++;
      }
      return n;
    };
    expect(greyIn(64)).toBeGreaterThan(30);
    expect(greyIn(0)).toBe(0);
  });
});

describe('determinism and resume', () => {
  it('1 and 2 workers give the same corpus ids and the same bytes', async () => {
    const fx = await makeFixture(10);
    const methods = ['cf-shuffle', 'f-random', 'f-mixed-rand'];
    const one = await runGenerate(options(fx.sourceDir, { methods, workers: 1 }));
    const twoDir = await cloneSource(fx);
    const two = await runGenerate(options(twoDir, { methods, workers: 2 }));
    expect(two.methods.map((m) => m.corpusId)).toEqual(one.methods.map((m) => m.corpusId));
    for (const m of methods) {
      expect(await treeHashes(join(twoDir, '..', m))).toEqual(await treeHashes(join(fx.sourceDir, '..', m)));
    }
  });

  it('a crash after the first shard, then a rerun, gives the bytes of an uninterrupted run', async () => {
    const fx = await makeFixture(10);
    const methods = ['cf-random', 'cf-tile', 'f-shuffle'];
    let done = 0;
    await expect(runGenerate(options(fx.sourceDir, {
      methods, onShardDone: () => { if (++done === 2) throw new Error('injected crash'); },
    }))).rejects.toThrow('injected crash');
    const resumed = await runGenerate(options(fx.sourceDir, { methods }));
    expect(resumed.methods.some((m) => m.resumedShards > 0)).toBe(true);
    const cleanDir = await cloneSource(fx);
    const clean = await runGenerate(options(cleanDir, { methods }));
    expect(resumed.methods.map((m) => m.corpusId)).toEqual(clean.methods.map((m) => m.corpusId));
    for (const m of methods) {
      expect(await treeHashes(join(fx.sourceDir, '..', m))).toEqual(await treeHashes(join(cleanDir, '..', m)));
    }
    // a second rerun resumes everything and changes nothing
    const again = await runGenerate(options(fx.sourceDir, { methods }));
    expect(again.rowsProcessed).toBe(0);
    expect(again.methods.every((m) => m.resumedShards === m.shards)).toBe(true);
  });

  it('regenerates a shard whose image was truncated, and refuses another config without --force', async () => {
    const fx = await makeFixture(6);
    const o = options(fx.sourceDir, { methods: ['cf-grey'] });
    const first = await runGenerate(o);
    const dir = join(fx.sourceDir, '..', 'cf-grey');
    const before = await treeHashes(dir);
    const row = (await corpusRows(dir))[5];
    await writeFile(join(dir, row.image_path!), Buffer.alloc(3));
    const again = await runGenerate(o);
    expect(again.methods[0].resumedShards).toBe(1); // shard 0 intact, shard 1 redone
    expect(again.methods[0].corpusId).toBe(first.methods[0].corpusId);
    expect(await treeHashes(dir)).toEqual(before);
    await expect(runGenerate({ ...o, seed: 5 })).rejects.toThrow(/different configuration[\s\S]*--force/);
    const forced = await runGenerate({ ...o, seed: 5, params: { 'cf-grey': { value: 127 } }, force: true });
    expect(forced.methods[0].corpusId).not.toBe(first.methods[0].corpusId);
  });

  it('refuses a corpus written by another version of the same infill algorithm', async () => {
    const fx = await makeFixture(2);
    const o = options(fx.sourceDir, { methods: ['cf-grey'] });
    const first = await runGenerate(o);
    const grey = getInfill('cf-grey')!;
    grey.algorithm = 2; // as if cf-grey's output had changed in a newer build
    try {
      await expect(runGenerate(o)).rejects.toThrow(/different configuration[\s\S]*--force/);
      const forced = await runGenerate({ ...o, force: true });
      expect(forced.methods[0].corpusId).not.toBe(first.methods[0].corpusId);
    } finally {
      delete grey.algorithm;
    }
  });

  it('resizes to --size with masks that never shrink the object', async () => {
    const fx = await makeFixture(4);
    await runGenerate(options(fx.sourceDir, { methods: ['cf-grey'], size: 13 }));
    const dir = join(fx.sourceDir, '..', 'cf-grey');
    for (const r of await corpusRows(dir)) {
      expect([r.width, r.height]).toEqual([13, 13]);
      const out = await decodeRaw(join(dir, r.image_path!));
      const src = (await decodeImageFile(join(fx.root, r.source_path), { width: 13, height: 13 })).image.data;
      const hole = boxMaskOf(resizeMaskAnyOver(objectMask(index(r)), 13, 13));
      let bad = 0;
      for (let p = 0; p < 169; p++) for (let c = 0; c < 3; c++) if (out[p * 3 + c] !== (hole.data[p] ? 128 : src[p * 3 + c])) bad++;
      expect(bad).toBe(0);
      // every source object pixel's footprint lands in the hole
      for (let y = 0; y < H; y++) for (let x = 0; x < W; x++) {
        if (objectAt(index(r), x, y)) expect(hole.data[Math.floor(((y + 0.5) * 13) / H) * 13 + Math.floor(((x + 0.5) * 13) / W)]).toBe(1);
      }
    }
  });
});
