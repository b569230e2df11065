import { describe, it, expect } from 'vitest';
import sharp from 'sharp';
import { mkdir, readFile, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { readSourceManifest, type CorpusRow, openManifest } from '../manifests/index.ts';
import { readFolder } from '../pipeline/datasets/folder.ts';
import { ensureSourceManifest } from '../pipeline/datasets/index.ts';
import { decodeImageFile } from '../pipeline/decode.ts';
import { GENERATE_DEFAULTS, runGenerate, createProgress, type GenerateOptions } from '../pipeline/generate/index.ts';
import { tempDir, writeFolderFixture, png, paint } from './fixtures/datasets.ts';
import { makeFixture } from './generate-fixture.ts';

/**
 * Issue #12, defect 5: input a stranger hands you. A folder dataset's symbolic links must not pull files from
 * outside its root into the manifest (or turn a linked folder into a class), and an image with a huge pixel count
 * is refused from its header before anything decodes it.
 */

const options = (sourceDir: string, extra: Partial<GenerateOptions> = {}): GenerateOptions => ({
  ...GENERATE_DEFAULTS, splits: ['train'], params: {}, size: null, sourceDir, shardSize: 4, methods: ['cf-grey'],
  progress: createProgress({ quiet: true }), log: () => {}, ...extra,
});

describe('folder: datasets and symbolic links', () => {
  it('a link out of the root is an error row naming it (and a linked folder is no class) unless --follow-symlinks', async () => {
    const root = await tempDir();
    const outside = await tempDir('outside-');
    await writeFolderFixture(root);
    await mkdir(join(outside, 'secrets'), { recursive: true });
    await writeFile(join(outside, 'secrets', 'x.png'), await png(16, 16, paint(16, 16, [1, 2, 3])));
    await writeFile(join(outside, 'y.png'), await png(16, 16, paint(16, 16, [4, 5, 6])));
    await symlink(join(outside, 'secrets'), join(root, 'train', 'evil'));            // a linked folder
    await symlink(join(outside, 'y.png'), join(root, 'train', 'dog', 'linked.png'));  // a linked file
    await symlink(join(root, 'train', 'cat', 'a.png'), join(root, 'train', 'cat', 'alias.png')); // inside: fine

    const { rows, classNames } = await readFolder(root);
    expect(classNames).toEqual(['cat', 'dog']);
    const byId = Object.fromEntries(rows.map((r) => [r.id, r]));
    expect(byId['train/cat/alias.png'].status).toBe('ok');
    for (const [id, target] of [['train/evil/x.png', join(outside, 'secrets', 'x.png')], ['train/dog/linked.png', join(outside, 'y.png')]]) {
      expect(byId[id].status, id).toBe('error');
      expect(byId[id].error, id).toBe(`${join(root, id)} is a symbolic link (or inside one) to ${target}, outside the dataset root ${root}; move the file into the dataset, or pass --follow-symlinks to read it`);
    }

    const followed = await readFolder(root, { followSymlinks: true });
    expect(followed.classNames).toEqual(['cat', 'dog', 'evil']);
    expect(followed.rows.every((r) => r.id === 'test/bird/d.png' || r.status === 'ok')).toBe(true);

    // through ensureSourceManifest: following is recorded, so asking for it rebuilds the manifest
    const corporaRoot = await tempDir();
    const plain = await ensureSourceManifest(`folder:${root}`, { corporaRoot });
    expect(plain.metadata.config.follow_symlinks).toBeUndefined();
    const follow = await ensureSourceManifest(`folder:${root}`, { corporaRoot, followSymlinks: true });
    expect(follow.rebuilt).toBe(true);
    expect(follow.metadata.config.follow_symlinks).toBe(true);
    expect((await readSourceManifest(follow.dir)).rows.find((r) => r.id === 'train/evil/x.png')?.status).toBe('ok');
  });
});

describe('pixel limit: refused from the header', () => {
  it('dataset: an image over --max-pixels is an error row naming its size and the flag; the limit is recorded', async () => {
    const root = await tempDir();
    await writeFolderFixture(root);
    const { rows } = await readFolder(root, { maxPixels: 200 });
    const a = rows.find((r) => r.id === 'train/cat/a.png')!;
    expect(a.status).toBe('error');
    expect(a.error).toBe(`${join(root, 'train/cat/a.png')}: image is 16x16 (256 pixels), over the limit of 200 pixels; pass --max-pixels 256 (or more) to process it`);
    expect(rows.every((r) => r.status === 'error')).toBe(true);

    const corporaRoot = await tempDir();
    const low = await ensureSourceManifest(`folder:${root}`, { corporaRoot, maxPixels: 200 });
    expect(low.metadata.config.max_pixels).toBe(200);
    const dflt = await ensureSourceManifest(`folder:${root}`, { corporaRoot });
    expect(dflt.rebuilt).toBe(true);
    expect(dflt.metadata.config.max_pixels).toBeUndefined();
  });

  it('the default limit (40 MP) catches a 9000×5000 PNG at ingest without decoding it', async () => {
    const root = await tempDir();
    await writeFolderFixture(root);
    await sharp({ create: { width: 9000, height: 5000, channels: 3, background: '#406080' } }).png({ compressionLevel: 1 }).toFile(join(root, 'train', 'cat', 'huge.png'));
    const { rows } = await readFolder(root);
    expect(rows.find((r) => r.id === 'train/cat/huge.png')!.error).toMatch(/image is 9000x5000 \(45\.0 megapixels\), over the limit of 40\.0 megapixels; pass --max-pixels 45000000 \(or more\) to process it$/);
  });

  it('generate: rows over --max-pixels are error rows (before decoding); the decoder refuses a file that grew since', async () => {
    const fx = await makeFixture(4); // 24×20 = 480 px
    const s = await runGenerate(options(fx.sourceDir, { maxPixels: 400, maxErrorRate: 1 }));
    expect(s.counts).toEqual({ ok: 0, skipped: 0, error: 4 });
    const dir = join(fx.sourceDir, '..', 'cf-grey');
    const rows: CorpusRow[] = [];
    for await (const r of (await openManifest<CorpusRow>(join(dir, 'manifest'))).rows()) rows.push(r);
    expect(rows[0].error).toBe('images/0.png: image is 24x20 (480 pixels), over the limit of 400 pixels; pass --max-pixels 480 (or more) to process it');
    expect(JSON.parse(await readFile(join(dir, 'corpus.json'), 'utf8')).config.max_pixels).toBe(400);
    // a lying manifest (or a file replaced after ingest): sharp's header check stops it before the pixels exist
    await expect(decodeImageFile(join(fx.root, 'images', '0.png'), undefined, { maxPixels: 100 }))
      .rejects.toThrow(/0\.png: image is 24x20 \(480 pixels\), over the limit of 100 pixels; pass --max-pixels 480/);
  });
});
