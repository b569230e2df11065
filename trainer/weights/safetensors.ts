import { open } from 'node:fs/promises';
import { UserError } from '../../manifests/errors.ts';
import { float16 } from './npy.ts';

/**
 * Hugging Face's `.safetensors`: an 8-byte little-endian header length N, N bytes of JSON
 * `{ "<name>": { "dtype": "F32", "shape": [...], "data_offsets": [begin, end] }, "__metadata__": {...} }`, then the
 * tensors' bytes (offsets relative to the end of the header), row-major, little-endian. Read with positioned reads,
 * one tensor at a time.
 */

/** One tensor of the file, as float32 in the file's own layout (PyTorch's OIHW for convs). */
export interface SafeTensor { shape: number[]; values: Float32Array; dtype: string }

const SIZES: Record<string, number> = { F32: 4, F16: 2, BF16: 2, F64: 8 };

function decode(bytes: Uint8Array, dtype: string, n: number): Float32Array {
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const out = new Float32Array(n);
  if (dtype === 'F32') { for (let i = 0; i < n; i++) out[i] = dv.getFloat32(4 * i, true); return out; }
  if (dtype === 'F64') { for (let i = 0; i < n; i++) out[i] = dv.getFloat64(8 * i, true); return out; }
  if (dtype === 'F16') { for (let i = 0; i < n; i++) out[i] = float16(dv.getUint16(2 * i, true)); return out; }
  // bfloat16: the high half of a float32
  const f = new DataView(new ArrayBuffer(4));
  for (let i = 0; i < n; i++) { f.setUint32(0, dv.getUint16(2 * i, true) << 16); out[i] = f.getFloat32(0); }
  return out;
}

/**
 * Every tensor of a .safetensors file by name (the header's order). UserError on a corrupt or truncated file.
 * `headersOnly`: shapes only (empty values), from the JSON header; offsets are still checked against the file size.
 */
export async function readSafetensors(file: string, opts: { headersOnly?: boolean } = {}): Promise<Map<string, SafeTensor>> {
  return (await readSafetensorsFile(file, opts)).tensors;
}

/** readSafetensors, plus the header's `__metadata__` strings (our exports keep their model config there, cfgen-meta.ts). */
export async function readSafetensorsFile(file: string, opts: { headersOnly?: boolean } = {}): Promise<{ tensors: Map<string, SafeTensor>; metadata: Record<string, string> }> {
  const bad = (msg: string): never => { throw new UserError(msg, { file, fix: 'download model.safetensors again: it is truncated or corrupt' }); };
  let fh;
  try {
    fh = await open(file, 'r');
  } catch (e) {
    throw new UserError((e as NodeJS.ErrnoException).code === 'ENOENT' ? 'weights file not found' : `cannot open: ${(e as Error).message}`, { file, fix: 'check the path given to --init' });
  }
  try {
    const { size } = await fh.stat();
    const lenBuf = Buffer.alloc(8);
    if (size < 8 || (await fh.read(lenBuf, 0, 8, 0)).bytesRead !== 8) bad('not a .safetensors file (shorter than its 8-byte header length)');
    const headerLen = Number(lenBuf.readBigUInt64LE(0));
    if (!(headerLen > 1 && 8 + headerLen <= size && headerLen < 100 * 2 ** 20)) bad(`not a .safetensors file (header length ${headerLen} does not fit a ${size}-byte file)`);
    const hb = Buffer.alloc(headerLen);
    await fh.read(hb, 0, headerLen, 8);
    let header: Record<string, { dtype: string; shape: number[]; data_offsets: [number, number] }>;
    let metadata: Record<string, string> = {};
    try {
      header = JSON.parse(hb.toString('utf8'));
    } catch (e) {
      return bad(`not a .safetensors file (header is not JSON: ${(e as Error).message})`);
    }
    const dataStart = 8 + headerLen;
    const out = new Map<string, SafeTensor>();
    for (const [name, t] of Object.entries(header)) {
      if (name === '__metadata__') {
        // the format allows only string values here; anything else is ignored rather than trusted
        if (t && typeof t === 'object') metadata = Object.fromEntries(Object.entries(t).filter(([, v]) => typeof v === 'string')) as Record<string, string>;
        continue;
      }
      const bpe = SIZES[t?.dtype];
      if (!bpe) bad(`tensor ${name}: dtype ${t?.dtype} is not a float type we read (F32, F16, BF16, F64)`);
      const n = (t.shape ?? []).reduce((a, b) => a * b, 1);
      const [b0, b1] = t.data_offsets ?? [];
      if (!(Number.isInteger(b0) && b1 - b0 === n * bpe)) bad(`tensor ${name}: data_offsets [${b0}, ${b1}] do not hold shape [${t.shape}] of ${t.dtype}`);
      if (dataStart + b1 > size) bad(`tensor ${name} ends at byte ${dataStart + b1}, past the end of the ${size}-byte file (truncated download?)`);
      if (opts.headersOnly) { out.set(name, { shape: [...t.shape], values: new Float32Array(0), dtype: t.dtype }); continue; }
      const bytes = Buffer.alloc(b1 - b0);
      await fh.read(bytes, 0, bytes.length, dataStart + b0);
      out.set(name, { shape: [...t.shape], values: decode(bytes, t.dtype, n), dtype: t.dtype });
    }
    if (out.size === 0) bad('the file holds no tensors');
    return { tensors: out, metadata };
  } finally {
    await fh.close();
  }
}
