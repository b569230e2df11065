/**
 * NumPy's `.npy` format (numpy.lib.format), the arrays inside a `.npz`: the magic "\x93NUMPY", a version byte pair,
 * a little-endian header length (2 bytes in version 1, 4 in versions 2 and 3), then a Python dict literal such as
 * `{'descr': '<f4', 'fortran_order': False, 'shape': (7, 7, 3, 64), }` and the raw data in C (or Fortran) order.
 * We read floating-point arrays only (what weight files hold) and return float32 in C order.
 */

/** A decoded array: shape, and values as float32 in row-major (C) order. */
export interface NpyArray { shape: number[]; values: Float32Array; descr: string }

const MAGIC = [0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59]; // \x93NUMPY

/** Why an array could not be read; the caller adds the file and the entry. */
export class NpyFormatError extends Error {}

/** Parse the header dict's three keys; anything else in a version 1–3 header is a format error. */
function parseHeader(text: string): { descr: string; fortran: boolean; shape: number[] } {
  const descr = /'descr'\s*:\s*'([^']*)'/.exec(text)?.[1];
  const fortran = /'fortran_order'\s*:\s*(True|False)/.exec(text)?.[1];
  const shapeText = /'shape'\s*:\s*\(([^)]*)\)/.exec(text)?.[1];
  if (descr === undefined || fortran === undefined || shapeText === undefined) {
    throw new NpyFormatError(`header is not a .npy header dict (${JSON.stringify(text.trim().slice(0, 120))})`);
  }
  const shape = shapeText.split(',').map((s) => s.trim()).filter((s) => s !== '').map((s) => {
    const n = Number(s.replace(/L$/, ''));
    if (!Number.isInteger(n) || n < 0) throw new NpyFormatError(`bad dimension "${s}" in shape (${shapeText})`);
    return n;
  });
  return { descr, fortran: fortran === 'True', shape };
}

/** Element reader for a dtype string: '<f4', '>f8', '<f2', '|f4'... (floats only). */
function elementReader(descr: string): { size: number; read: (dv: DataView, at: number) => number } {
  const m = /^([<>|=])f([248])$/.exec(descr);
  if (!m) throw new NpyFormatError(`dtype ${descr} is not a floating-point type (weights are float16/32/64)`);
  const little = m[1] !== '>';
  const size = Number(m[2]);
  if (size === 4) return { size, read: (dv, at) => dv.getFloat32(at, little) };
  if (size === 8) return { size, read: (dv, at) => dv.getFloat64(at, little) };
  return { size, read: (dv, at) => float16(dv.getUint16(at, little)) };
}

/** IEEE half → number. */
export function float16(h: number): number {
  const s = h & 0x8000 ? -1 : 1;
  const e = (h >> 10) & 0x1f;
  const f = h & 0x3ff;
  if (e === 0) return s * 2 ** -14 * (f / 1024);
  if (e === 31) return f ? NaN : s * Infinity;
  return s * 2 ** (e - 15) * (1 + f / 1024);
}

/** Fortran (column-major) order → C order. */
function toCOrder(v: Float32Array, shape: number[]): Float32Array {
  if (shape.length < 2) return v;
  const out = new Float32Array(v.length);
  const n = shape.length;
  const idx = new Array<number>(n).fill(0);
  // walk the output in C order; the Fortran offset has stride 1 on the first axis
  const fStride = shape.map((_, i) => shape.slice(0, i).reduce((a, b) => a * b, 1));
  for (let o = 0; o < v.length; o++) {
    let f = 0;
    for (let i = 0; i < n; i++) f += idx[i] * fStride[i];
    out[o] = v[f];
    for (let i = n - 1; i >= 0; i--) { if (++idx[i] < shape[i]) break; idx[i] = 0; }
  }
  return out;
}

/** A .npy header: dtype, order, shape, where the data starts and how many bytes it takes. */
export interface NpyHeader { descr: string; fortran: boolean; shape: number[]; dataStart: number; dataBytes: number }

/** Parse the header at the start of `bytes` (the data need not be there). Throws NpyFormatError. */
export function parseNpyHeader(bytes: Uint8Array): NpyHeader {
  if (bytes.length < 10 || MAGIC.some((b, i) => bytes[i] !== b)) throw new NpyFormatError('not a .npy array (no \\x93NUMPY magic)');
  const major = bytes[6];
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let headerLen: number, start: number;
  if (major === 1) { headerLen = dv.getUint16(8, true); start = 10; } else if (major === 2 || major === 3) {
    if (bytes.length < 12) throw new NpyFormatError('truncated .npy header');
    headerLen = dv.getUint32(8, true); start = 12;
  } else throw new NpyFormatError(`.npy format version ${major}.${bytes[7]} is not supported (1.0–3.0 are)`);
  if (start + headerLen > bytes.length) throw new NpyFormatError(`truncated .npy header (needs ${start + headerLen} bytes, have ${bytes.length})`);
  const h = parseHeader(new TextDecoder(major === 3 ? 'utf-8' : 'latin1').decode(bytes.subarray(start, start + headerLen)));
  const { size } = elementReader(h.descr);
  return { ...h, dataStart: start + headerLen, dataBytes: size * h.shape.reduce((a, b) => a * b, 1) };
}

/** Decode one .npy file's bytes. Throws NpyFormatError saying what is wrong (bad magic, dtype, truncated data). */
export function parseNpy(bytes: Uint8Array): NpyArray {
  const header = parseNpyHeader(bytes);
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const { size, read } = elementReader(header.descr);
  const n = header.dataBytes / size;
  const dataStart = header.dataStart;
  if (bytes.length - dataStart < header.dataBytes) {
    throw new NpyFormatError(`truncated data: shape (${header.shape.join(', ')}) ${header.descr} needs ${header.dataBytes} bytes, the entry has ${bytes.length - dataStart}`);
  }
  let values: Float32Array = new Float32Array(n);
  if (header.descr.endsWith('f4') && header.descr[0] !== '>' && (bytes.byteOffset + dataStart) % 4 === 0) {
    values.set(new Float32Array(bytes.buffer, bytes.byteOffset + dataStart, n));
  } else {
    for (let i = 0; i < n; i++) values[i] = read(dv, dataStart + i * size);
  }
  if (header.fortran) values = toCOrder(values, header.shape);
  return { shape: header.shape, values, descr: header.descr };
}
