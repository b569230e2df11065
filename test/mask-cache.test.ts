import { describe, it, expect, beforeAll } from 'vitest';
import { cp, mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { newMask, rngFor, type Mask } from '../manifests/index.ts';
import { GENERATE_DEFAULTS, createProgress, runGenerate, type GenerateOptions } from '../pipeline/generate/index.ts';
import { prepareRow, type Prepared } from '../pipeline/generate/prepare.ts';
import {
  MASK_CACHE_ENV, MASK_CACHE_FOLDER, decodeEntry, decodeRle, encodeEntry, encodeRle, maskCacheFor, maskCacheKey, maskEntryPath,
} from '../pipeline/generate/mask-cache.ts';
import { makeFixture, png, rawMask, treeHashes, W, H, type Fixture } from './generate-fixture.ts';

const maskOf = (w: number, h: number, f: (i: number) => number): Mask => {
  const m = newMask(w, h);
  for (let i = 0; i < w * h; i++) m.data[i] = f(i);
  return m;
};

/** Every *.mask file under the cache folder, with its modification time. */
async function entries(dir: string): Promise<Map<string, number>> {
  const out = new Map<string, number>();
  let subs: string[];
  try { subs = await readdir(dir); } catch { return out; }
  for (const s of subs) for (const f of await readdir(join(dir, s))) out.set(join(s, f), (await stat(join(dir, s, f))).mtimeMs);
  return out;
}

const okParts = (p: Prepared) => {
  if (p.status !== 'ok') throw new Error(`not ok: ${p.reason}`);
  return { image: Buffer.from(p.image.data), object: Buffer.from(p.object.data), box: Buffer.from(p.box.data), kind: p.objectKind };
};

describe('mask cache: run-length code and entries', () => {
  it('round-trips masks of every shape, and refuses codes that do not cover the mask exactly', () => {
    const r = rngFor('rle-test', 0);
    const masks = [
      maskOf(1, 1, () => 0), maskOf(1, 1, () => 1), maskOf(7, 3, () => 1), maskOf(7, 3, () => 0),
      maskOf(300, 200, (i) => (i % 300 > 40 && i % 300 < 90 ? 1 : 0)), maskOf(64, 64, () => (r.next() < 0.5 ? 1 : 0)),
      maskOf(2000, 2, (i) => (i >= 1 ? 1 : 0)), // a run longer than 127 (two varint bytes) starting on the object
    ];
    for (const m of masks) {
      const back = decodeRle(encodeRle(m), m.width, m.height);
      expect(back && Buffer.from(back.data).equals(Buffer.from(m.data))).toBe(true);
    }
    const code = encodeRle(masks[4]);
    expect(decodeRle(code, 300, 199)).toBeNull(); // longer than the mask
    expect(decodeRle(code, 301, 200)).toBeNull(); // shorter than the mask
    expect(decodeRle(Uint8Array.from([0x80]), 1, 1)).toBeNull(); // a varint cut short
  });

  it('an entry decodes only for its own key and size, and not once any byte changed', () => {
    const key = 'ab'.repeat(32);
    const masks = { object: maskOf(30, 20, (i) => (i % 7 === 0 ? 1 : 0)), box: maskOf(30, 20, (i) => (i > 100 ? 1 : 0)), objectKind: 'seg' as const };
    const bytes = encodeEntry(key, masks);
    const back = decodeEntry(bytes, key, 30, 20)!;
    expect(Buffer.from(back.object.data).equals(Buffer.from(masks.object.data))).toBe(true);
    expect(Buffer.from(back.box.data).equals(Buffer.from(masks.box.data))).toBe(true);
    expect(back.objectKind).toBe('seg');
    expect(decodeEntry(bytes, 'cd'.repeat(32), 30, 20)).toBeNull();
    expect(decodeEntry(bytes, key, 20, 30)).toBeNull();
    for (const at of [0, 5, 20, 60, bytes.length - 40, bytes.length - 1]) {
      const bad = Uint8Array.from(bytes);
      bad[at] ^= 1;
      expect(decodeEntry(bad, key, 30, 20), `byte ${at}`).toBeNull();
    }
    expect(decodeEntry(bytes.subarray(0, bytes.length - 1), key, 30, 20)).toBeNull();
  });

  it('sits beside the corpus folders, and CFGEN_MASK_CACHE=off turns it off', () => {
    const ctx = { methods: { 'cf-tile': { dir: '/c/toy/cf-tile' } } };
    expect(maskCacheFor(ctx, {})).toBe(join('/c/toy', MASK_CACHE_FOLDER));
    expect(maskCacheFor(ctx, { [MASK_CACHE_ENV]: 'off' })).toBeNull();
    expect(maskCacheFor({ methods: {} }, {})).toBeNull();
  });
});

describe('mask cache: prepareRow', () => {
  let fx: Fixture;
  beforeAll(async () => { fx = await makeFixture(4); });

  it('gives the same pixels and masks with no cache, a cold cache and a warm one, at the stored size and resized', async () => {
    const cache = await mkdtemp(join(tmpdir(), 'mask-cache-'));
    for (const size of [null, { width: 17, height: 13 }]) {
      for (const row of fx.rows) {
        const none = okParts(await prepareRow(row, { root: fx.root, size }));
        const cold = okParts(await prepareRow(row, { root: fx.root, size, maskCache: cache }));
        const key = (await maskCacheKey(fx.root, row, size?.width ?? W, size?.height ?? H))!;
        await stat(maskEntryPath(cache, key)); // written on the miss
        const warm = okParts(await prepareRow(row, { root: fx.root, size, maskCache: cache }));
        expect(cold).toEqual(none);
        expect(warm).toEqual(none);
      }
    }
    // content-addressed: one entry per distinct mask file (the fixture's objects repeat every 4 images) and size
    expect((await entries(cache)).size).toBe(4 * 2);
  });

  it('a damaged entry is a miss that is decoded again and rewritten; a changed mask file gets a new key', async () => {
    const cache = await mkdtemp(join(tmpdir(), 'mask-cache-'));
    const row = fx.rows[1];
    const want = okParts(await prepareRow(row, { root: fx.root, size: null }));
    await prepareRow(row, { root: fx.root, size: null, maskCache: cache });
    const key = (await maskCacheKey(fx.root, row, W, H))!;
    const file = maskEntryPath(cache, key);
    const good = await readFile(file);
    const bad = Buffer.from(good);
    bad[70] ^= 0xff;
    await writeFile(file, bad);
    expect(okParts(await prepareRow(row, { root: fx.root, size: null, maskCache: cache }))).toEqual(want);
    expect((await readFile(file)).equals(good)).toBe(true);

    // another object in the same mask file: the old entry is not used, the new masks are
    const copy = await mkdtemp(join(tmpdir(), 'mask-cache-root-'));
    await cp(fx.root, copy, { recursive: true });
    await writeFile(join(copy, row.mask_path!), await png(rawMask(2), W, H, 1));
    expect(await maskCacheKey(copy, row, W, H)).not.toBe(key);
    const changed = okParts(await prepareRow(row, { root: copy, size: null, maskCache: cache }));
    expect(changed).toEqual(okParts(await prepareRow(row, { root: copy, size: null })));
    expect(changed.object.equals(want.object)).toBe(false);
  });

  it('a cache folder deleted between two rows is made again', async () => {
    const cache = await mkdtemp(join(tmpdir(), 'mask-cache-'));
    const [a, b] = fx.rows;
    await prepareRow(a, { root: fx.root, size: null, maskCache: cache });
    await rm(cache, { recursive: true });
    await prepareRow(b, { root: fx.root, size: null, maskCache: cache });
    await stat(maskEntryPath(cache, (await maskCacheKey(fx.root, b, W, H))!));
  });

  it('an unreadable mask reports the same error row with and without a cache', async () => {
    const cache = await mkdtemp(join(tmpdir(), 'mask-cache-'));
    const row = { ...fx.rows[0], mask_path: 'masks/missing.png' };
    const none = await prepareRow(row, { root: fx.root, size: null });
    expect(none.status).toBe('error');
    expect(await prepareRow(row, { root: fx.root, size: null, maskCache: cache })).toEqual(none);
    expect((await entries(cache)).size).toBe(0);
  });
});

describe('mask cache: generate', () => {
  const options = (sourceDir: string, extra: Partial<GenerateOptions> = {}): GenerateOptions => ({
    ...GENERATE_DEFAULTS, splits: ['train', 'val'], params: {}, size: null, sourceDir, shardSize: 4, variants: 2,
    methods: ['cf-tile', 'f-mixed-rand'], progress: createProgress({ quiet: true }), log: () => {}, ...extra,
  });

  it('corpora made with no cache, a cold cache (2 workers) and a warm cache are byte-identical, with the same ids', async () => {
    const fx = await makeFixture(10);
    const base = join(fx.sourceDir, '..');
    const clone = await mkdtemp(join(tmpdir(), 'mask-cache-none-'));
    const noneSource = join(clone, 'corpora', 'toy', 'source');
    await cp(fx.sourceDir, noneSource, { recursive: true });

    const prev = process.env[MASK_CACHE_ENV];
    process.env[MASK_CACHE_ENV] = 'off';
    let none;
    try {
      none = await runGenerate(options(noneSource));
    } finally {
      if (prev === undefined) delete process.env[MASK_CACHE_ENV]; else process.env[MASK_CACHE_ENV] = prev;
    }
    await expect(stat(join(clone, 'corpora', 'toy', MASK_CACHE_FOLDER))).rejects.toThrow();

    const cold = await runGenerate(options(fx.sourceDir, { workers: 2 }));
    const cacheDir = join(base, MASK_CACHE_FOLDER);
    const written = await entries(cacheDir);
    // one entry per distinct mask file (the fixture has 4) at the stored size, shared by rows, donors and methods
    expect(written.size).toBe(4);
    const coldTrees = [await treeHashes(join(base, 'cf-tile')), await treeHashes(join(base, 'f-mixed-rand'))];

    for (const m of ['cf-tile', 'f-mixed-rand']) await rm(join(base, m), { recursive: true });
    const warm = await runGenerate(options(fx.sourceDir));
    expect(await entries(cacheDir)).toEqual(written); // all hits: nothing rewritten

    for (const [k, m] of ['cf-tile', 'f-mixed-rand'].entries()) {
      const noneTree = await treeHashes(join(noneSource, '..', m));
      expect(coldTrees[k], m).toEqual(noneTree);
      expect(await treeHashes(join(base, m)), m).toEqual(noneTree);
    }
    expect(cold.methods.map((m) => m.corpusId)).toEqual(none.methods.map((m) => m.corpusId));
    expect(warm.methods.map((m) => m.corpusId)).toEqual(none.methods.map((m) => m.corpusId));
    expect(warm.counts).toEqual(none.counts);
  });
});

describe('mask cache temp files', () => {
  it('a killed writer\'s temp files are swept (dead pid, or old); a live writer\'s fresh one is kept', async () => {
    const { sweepMaskCacheTemps } = await import('../pipeline/generate/mask-cache.ts');
    const { mkdtemp, mkdir, writeFile, readdir, utimes, rm } = await import('node:fs/promises');
    const { tmpdir } = await import('node:os');
    const { join } = await import('node:path');
    const { spawnSync } = await import('node:child_process');
    const dir = await mkdtemp(join(tmpdir(), 'cfgen-maskcache-'));
    try {
      await mkdir(join(dir, 'ab'));
      const dead = spawnSync(process.execPath, ['-e', '0']).pid!; // exited: its pid is free
      await writeFile(join(dir, 'ab', `abc.mask.tmp-${dead}-0011aabb`), 'x');
      await writeFile(join(dir, 'ab', `abd.mask.tmp-${process.pid}-0011aabc`), 'x');
      const old = join(dir, 'ab', `abe.mask.tmp-${process.pid}-0011aabd`);
      await writeFile(old, 'x');
      await utimes(old, new Date(Date.now() - 3_600_000), new Date(Date.now() - 3_600_000));
      await writeFile(join(dir, 'ab', 'abf.mask'), 'entry');
      expect(await sweepMaskCacheTemps(dir)).toBe(2);
      expect((await readdir(join(dir, 'ab'))).sort()).toEqual(['abd.mask.tmp-' + process.pid + '-0011aabc', 'abf.mask'].sort());
      expect(await sweepMaskCacheTemps(null)).toBe(0);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
