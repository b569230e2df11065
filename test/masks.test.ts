import { describe, it, expect } from 'vitest';
import { mkdtemp, mkdir, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import {
  boxesToMask, boundingBoxOfMask, boxMaskOf, loadSegMask, parseNpy, resolveInsideRoot,
} from '../manifests/masks.ts';
import { UserError } from '../manifests/errors.ts';
import type { SourceRow } from '../manifests/schema.ts';

/** Hand-built .npy bytes: magic, version 1.0, little-endian header length, header padded to 64 bytes, data. */
function npyBytes(descr: string, shape: number[], data: Uint8Array, fortran = false): Uint8Array {
  const shapeStr = shape.length === 1 ? `(${shape[0]},)` : `(${shape.join(', ')})`;
  let header = `{'descr': '${descr}', 'fortran_order': ${fortran ? 'True' : 'False'}, 'shape': ${shapeStr}, }`;
  const total = 10 + header.length + 1;
  header += ' '.repeat((64 - (total % 64)) % 64) + '\n';
  const out = new Uint8Array(10 + header.length + data.length);
  out.set([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59, 1, 0], 0);
  out[8] = header.length & 0xff;
  out[9] = header.length >> 8;
  for (let i = 0; i < header.length; i++) out[10 + i] = header.charCodeAt(i);
  out.set(data, 10 + header.length);
  return out;
}

function row(over: Partial<SourceRow>): SourceRow {
  return {
    id: 'r1', split: 'train', label: 0, class_name: 'a', path: 'img.png', mask_path: null, mask_format: null,
    boxes: null, group: null, place: null, location: null, variant: null, width: 4, height: 3, status: 'ok', error: null,
    ...over,
  };
}

const grid = (m: { width: number; height: number; data: Uint8Array }): string[] =>
  Array.from({ length: m.height }, (_, y) => Array.from(m.data.subarray(y * m.width, (y + 1) * m.width)).join(''));

describe('boxesToMask', () => {
  it('covers every pixel a fractional box touches (floor start, ceil end)', () => {
    // x 1.5..3.2 → columns 1,2,3; y 0.2..1.1 → rows 0,1
    const m = boxesToMask([1.5, 0.2, 1.7, 0.9], 6, 4);
    expect(grid(m)).toEqual(['011100', '011100', '000000', '000000']);
  });

  it('unions several boxes and clips to the image', () => {
    const m = boxesToMask([-2, -1, 3, 2, 4.9, 2.5, 5, 5], 6, 4);
    expect(grid(m)).toEqual(['100000', '000000', '000011', '000011']);
  });

  it('ignores NaN / infinite / empty boxes but keeps the valid ones', () => {
    const m = boxesToMask([NaN, 0, 2, 2, 0, 0, 0, 3, 1, Infinity, 1, 1, 0, 0, 1, 1], 3, 2);
    expect(grid(m)).toEqual(['100', '000']);
    expect(Array.from(boxesToMask([NaN, NaN, NaN, NaN], 2, 2).data)).toEqual([0, 0, 0, 0]);
  });

  it('an integer box covers exactly its pixels', () => {
    const m = boxesToMask([1, 1, 2, 1], 4, 3);
    expect(grid(m)).toEqual(['0000', '0110', '0000']);
  });
});

describe('bounding boxes of segmentation masks', () => {
  it('finds the tight box and fills it', () => {
    const m = { width: 5, height: 4, data: Uint8Array.from([0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 1, 0]) };
    expect(boundingBoxOfMask(m)).toEqual({ x: 1, y: 1, w: 3, h: 3 });
    expect(grid(boxMaskOf(m))).toEqual(['00000', '01110', '01110', '01110']);
  });
  it('an empty mask has no box and an empty box mask', () => {
    const m = { width: 3, height: 2, data: new Uint8Array(6) };
    expect(boundingBoxOfMask(m)).toBeNull();
    expect(Array.from(boxMaskOf(m).data)).toEqual([0, 0, 0, 0, 0, 0]);
  });
});

describe('resolveInsideRoot', () => {
  it('resolves relative paths under the root', () => {
    expect(resolveInsideRoot('/data/ds', 'a/b.png', 'x.csv')).toBe('/data/ds/a/b.png');
    expect(resolveInsideRoot('/data/ds', 'a/../b.png', 'x.csv')).toBe('/data/ds/b.png');
  });
  it('refuses .. escapes and absolute paths, naming the file and row', () => {
    expect(() => resolveInsideRoot('/data/ds', '../other/x.png', { file: 'metadata.csv', row: 7 }))
      .toThrow(/metadata\.csv \(row 7\): path "\.\.\/other\/x\.png" escapes the dataset root[\s\S]*relative to the dataset root/);
    expect(() => resolveInsideRoot('/data/ds', '/etc/passwd', { file: 'm.arrow', row: 'id3' }))
      .toThrow(/m\.arrow \(row id3\): path "\/etc\/passwd" is absolute/);
    expect(() => resolveInsideRoot('/data/ds', 'a/../../x', 'f.csv')).toThrow(UserError);
  });
});

describe('loadSegMask', () => {
  it('returns null without a mask path', async () => {
    expect(await loadSegMask('/nowhere', row({}))).toBeNull();
  });

  it('reads a PNG mask: any nonzero channel is object', async () => {
    const root = await mkdtemp(join(tmpdir(), 'mask-'));
    const rgb = new Uint8Array(4 * 3 * 3);
    rgb[(0 * 4 + 1) * 3 + 2] = 1; // blue=1 at (1,0)
    rgb[(2 * 4 + 3) * 3 + 0] = 255; // red at (3,2)
    await sharp(rgb, { raw: { width: 4, height: 3, channels: 3 } }).png().toFile(join(root, 'm.png'));
    const m = await loadSegMask(root, row({ mask_path: 'm.png', mask_format: 'png-nonzero' }));
    expect(grid(m!)).toEqual(['0100', '0000', '0001']);
  });

  it('reads a hand-written .npy (uint8 2-D, float32 3-D with NaN, bool, int64, float64)', async () => {
    const root = await mkdtemp(join(tmpdir(), 'mask-'));
    await writeFile(join(root, 'u8.npy'), npyBytes('|u1', [3, 4], Uint8Array.from([0, 0, 0, 7, 0, 1, 0, 0, 0, 0, 0, 0])));
    expect(grid((await loadSegMask(root, row({ mask_path: 'u8.npy', mask_format: 'npy' })))!)).toEqual(['0001', '0100', '0000']);

    const f = new Float32Array(3 * 4 * 2);
    f[(1 * 4 + 2) * 2 + 1] = 0.5; // channel 1 only: any-over-channels
    f[(2 * 4 + 0) * 2 + 0] = NaN; // NaN is not object
    f[(0 * 4 + 0) * 2 + 0] = -1;
    await writeFile(join(root, 'f4.npy'), npyBytes('<f4', [3, 4, 2], new Uint8Array(f.buffer)));
    expect(grid((await loadSegMask(root, row({ mask_path: 'f4.npy', mask_format: 'npy' })))!)).toEqual(['1000', '0010', '0000']);

    await writeFile(join(root, 'b.npy'), npyBytes('|b1', [3, 4], Uint8Array.from([1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1])));
    expect(grid((await loadSegMask(root, row({ mask_path: 'b.npy', mask_format: 'npy' })))!)).toEqual(['1000', '0000', '0001']);

    const i8 = new BigInt64Array(12); i8[5] = 3n;
    await writeFile(join(root, 'i8.npy'), npyBytes('<i8', [3, 4], new Uint8Array(i8.buffer)));
    expect(grid((await loadSegMask(root, row({ mask_path: 'i8.npy', mask_format: 'npy' })))!)).toEqual(['0000', '0100', '0000']);

    const f8 = new Float64Array(12); f8[11] = 1e-300;
    await writeFile(join(root, 'f8.npy'), npyBytes('<f8', [3, 4], new Uint8Array(f8.buffer)));
    expect(grid((await loadSegMask(root, row({ mask_path: 'f8.npy', mask_format: 'npy' })))!)).toEqual(['0000', '0000', '0001']);
  });

  it('parses a big-endian float32 .npy', () => {
    const data = new Uint8Array(8);
    new DataView(data.buffer).setFloat32(4, 2.5, false);
    const arr = parseNpy(npyBytes('>f4', [1, 2], data), 'be.npy');
    expect(arr.shape).toEqual([1, 2]);
    expect(Array.from(arr.values)).toEqual([0, 2.5]);
  });

  it('refuses Fortran-order and unsupported dtypes with a clear message', async () => {
    const root = await mkdtemp(join(tmpdir(), 'mask-'));
    await writeFile(join(root, 'f.npy'), npyBytes('|u1', [3, 4], new Uint8Array(12), true));
    await expect(loadSegMask(root, row({ mask_path: 'f.npy', mask_format: 'npy' }))).rejects.toThrow(/f\.npy: .*Fortran order[\s\S]*ascontiguousarray/);
    await writeFile(join(root, 'c.npy'), npyBytes('<c8', [3, 4], new Uint8Array(96)));
    await expect(loadSegMask(root, row({ mask_path: 'c.npy', mask_format: 'npy' }))).rejects.toThrow(/unsupported dtype '<c8'/);
    await writeFile(join(root, 't.npy'), npyBytes('|u1', [3, 4], new Uint8Array(5)));
    await expect(loadSegMask(root, row({ mask_path: 't.npy', mask_format: 'npy' }))).rejects.toThrow(/truncated/);
  });

  it('nofg-diff: object where no_fg is (JPEG-)black and the original is not', async () => {
    const root = await mkdtemp(join(tmpdir(), 'mask-'));
    await mkdir(join(root, 'orig'));
    await mkdir(join(root, 'nofg'));
    // original: pixel 0 is black already (background that is black must stay background), the rest coloured
    const orig = Uint8Array.from([0, 0, 0, 200, 10, 10, 90, 90, 90, 50, 60, 70]);
    // no_fg: pixel 1 blacked out exactly, pixel 2 "almost black" (JPEG noise <= 10), pixel 3 untouched
    const nofg = Uint8Array.from([0, 0, 0, 0, 0, 0, 9, 10, 3, 50, 60, 70]);
    await sharp(orig, { raw: { width: 2, height: 2, channels: 3 } }).png().toFile(join(root, 'orig/a.png'));
    await sharp(nofg, { raw: { width: 2, height: 2, channels: 3 } }).png().toFile(join(root, 'nofg/a.png'));
    const m = await loadSegMask(root, row({ path: 'orig/a.png', mask_path: 'nofg/a.png', mask_format: 'nofg-diff', width: 2, height: 2 }));
    expect(Array.from(m!.data)).toEqual([0, 1, 1, 0]);
  });

  it('refuses a mask whose size differs from the image, naming both files and sizes', async () => {
    const root = await mkdtemp(join(tmpdir(), 'mask-'));
    await sharp(new Uint8Array(5 * 2 * 3), { raw: { width: 5, height: 2, channels: 3 } }).png().toFile(join(root, 'm.png'));
    await expect(loadSegMask(root, row({ id: 'x9', path: 'img.jpg', mask_path: 'm.png', mask_format: 'png-nonzero' })))
      .rejects.toThrow(/row x9.*mask .*m\.png is 5x2 but image .*img\.jpg is 4x3/);
  });

  it('refuses a mask path that escapes the root, and names a missing mask file', async () => {
    const root = await mkdtemp(join(tmpdir(), 'mask-'));
    await expect(loadSegMask(root, row({ mask_path: '../x.png', mask_format: 'png-nonzero' }), { file: 'src.arrow' }))
      .rejects.toThrow(/src\.arrow \(row r1\): path "\.\.\/x\.png" escapes the dataset root/);
    await expect(loadSegMask(root, row({ mask_path: 'nope.png', mask_format: 'png-nonzero' }))).rejects.toThrow(/nope\.png: file not found/);
  });
});
