import { readFile } from 'node:fs/promises';
import { UserError } from './errors.ts';
import { newMask, type Mask } from './pixels.ts';

/** Segmentation masks saved as NumPy `.npy` files (`mask_format` `npy`): a small reader, no numpy needed. */

/** A parsed NumPy array, values widened to float64 for the nonzero test. */
export interface NpyArray {
  shape: number[];
  descr: string;
  values: Float64Array;
}

/**
 * Parse a NumPy .npy file (format versions 1-3). Supported dtypes: bool, uint8, int64, float32, float64 (either
 * byte order). Fortran order is refused: its element order differs and a silent transpose would misplace the mask.
 */
export function parseNpy(bytes: Uint8Array, file: string): NpyArray {
  const fail = (why: string): never => {
    throw new UserError(`not a readable .npy mask: ${why}`, { file, fix: 'save the mask with numpy.save(path, mask) as a C-ordered bool/uint8/float/int64 array of shape [H, W] or [H, W, C]' });
  };
  const magic = [0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59];
  if (bytes.length < 10 || magic.some((b, i) => bytes[i] !== b)) fail('missing the \\x93NUMPY magic');
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const major = bytes[6];
  let headerLen: number, headerStart: number;
  if (major === 1) { headerLen = dv.getUint16(8, true); headerStart = 10; }
  else if (major === 2 || major === 3) {
    if (bytes.length < 12) fail('truncated header');
    headerLen = dv.getUint32(8, true); headerStart = 12;
  } else return fail(`unsupported format version ${major}`);
  if (headerStart + headerLen > bytes.length) fail('truncated header');
  const header = new TextDecoder(major === 3 ? 'utf-8' : 'latin1').decode(bytes.subarray(headerStart, headerStart + headerLen));
  const descr = /'descr'\s*:\s*'([^']*)'/.exec(header)?.[1];
  const fortran = /'fortran_order'\s*:\s*(True|False)/.exec(header)?.[1];
  const shapeStr = /'shape'\s*:\s*\(([^)]*)\)/.exec(header)?.[1];
  if (descr === undefined || fortran === undefined || shapeStr === undefined) return fail(`cannot parse header ${header.trim()}`);
  if (fortran === 'True') {
    throw new UserError('the .npy mask is stored in Fortran order (fortran_order: True), which is not supported', {
      file, fix: 'rewrite it in C order: numpy.save(path, numpy.ascontiguousarray(mask))',
    });
  }
  const shape = shapeStr.split(',').map((s) => s.trim()).filter((s) => s !== '').map(Number);
  if (shape.some((n) => !Number.isInteger(n) || n < 0)) fail(`bad shape (${shapeStr})`);
  const count = shape.reduce((a, b) => a * b, 1);
  const little = descr[0] !== '>';
  const kind = descr.replace(/^[<>|=]/, '');
  const size = ({ b1: 1, u1: 1, i8: 8, f4: 4, f8: 8 } as Record<string, number>)[kind];
  if (!size) fail(`unsupported dtype '${descr}' (use bool, uint8, int64, float32 or float64)`);
  const dataStart = headerStart + headerLen;
  if (bytes.length - dataStart < count * size) fail(`data is truncated: shape (${shape.join(', ')}) needs ${count * size} bytes, file has ${bytes.length - dataStart}`);
  const values = new Float64Array(count);
  for (let i = 0, o = dataStart; i < count; i++, o += size) {
    switch (kind) {
      case 'b1': case 'u1': values[i] = bytes[o]; break;
      case 'i8': values[i] = Number(dv.getBigInt64(o, little)); break;
      case 'f4': values[i] = dv.getFloat32(o, little); break;
      case 'f8': values[i] = dv.getFloat64(o, little); break;
    }
  }
  return { shape, descr, values };
}

/** .npy mask: nonzero is object (NaN is not); [H, W] or [H, W, C] with any-over-channels. */
export async function decodeNpyMask(file: string): Promise<Mask> {
  let bytes: Uint8Array;
  try {
    bytes = await readFile(file);
  } catch {
    throw new UserError('file not found', { file, fix: 'restore the .npy mask, or remove the row that names it' });
  }
  const arr = parseNpy(bytes, file);
  if (arr.shape.length !== 2 && arr.shape.length !== 3) {
    throw new UserError(`mask has shape (${arr.shape.join(', ')}); expected [H, W] or [H, W, C]`, { file, fix: 'save a 2-D mask or an HWC array' });
  }
  const [h, w] = arr.shape;
  const c = arr.shape[2] ?? 1;
  const m = newMask(w, h);
  for (let i = 0; i < w * h; i++) {
    for (let k = 0; k < c; k++) {
      const v = arr.values[i * c + k];
      if (v > 0 || v < 0) { m.data[i] = 1; break; }
    }
  }
  return m;
}
