import { deflateRawSync } from 'node:zlib';
import { writeFile } from 'node:fs/promises';

/**
 * Writers of the exact file formats users download, for the pretrained-weights tests (no numpy or Python here):
 * numpy's `.npy` v1.0 (header dict padded with spaces to a 64-byte boundary, numpy ≥ 1.x / 2.x layout), `.npz` as
 * numpy.savez writes it (a zip with one `<name>.npy` entry per array, each local header forced to zip64 as numpy
 * does since gh-10776, stored or deflated), and Hugging Face `.safetensors`.
 */

const CRC_TABLE = (() => {
  const t = new Uint32Array(256);
  for (let n = 0; n < 256; n++) { let c = n; for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1; t[n] = c >>> 0; }
  return t;
})();
function crc32(b: Uint8Array): number {
  let c = 0xffffffff;
  for (let i = 0; i < b.length; i++) c = CRC_TABLE[(c ^ b[i]) & 0xff] ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

/** numpy.lib.format.write_array for a C-order little-endian float32 array (format 1.0). */
export function npyBytes(values: Float32Array, shape: number[]): Buffer {
  const shapeRepr = shape.length === 1 ? `(${shape[0]},)` : `(${shape.join(', ')})`;
  let header = `{'descr': '<f4', 'fortran_order': False, 'shape': ${shapeRepr}, }`;
  // numpy ≥ 1.22 leaves room for the first axis to grow to 21 digits
  header += ' '.repeat(shape.length ? 21 - String(shape[0]).length : 0);
  const hlen = header.length + 1;
  header += ' '.repeat(64 - ((10 + hlen) % 64)) + '\n';
  const head = Buffer.alloc(10);
  Buffer.from([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59, 1, 0]).copy(head);
  head.writeUInt16LE(header.length, 8);
  const data = Buffer.alloc(values.length * 4);
  values.forEach((v, i) => data.writeFloatLE(v, i * 4));
  return Buffer.concat([head, Buffer.from(header, 'latin1'), data]);
}

/** A zip as Python's zipfile writes numpy.savez's entries: zip64 extra field in every local header. */
export function zipBytes(entries: { name: string; data: Buffer }[], deflate = false): Buffer {
  const parts: Buffer[] = [];
  const central: Buffer[] = [];
  let offset = 0;
  for (const e of entries) {
    const name = Buffer.from(e.name, 'utf8');
    const body = deflate ? deflateRawSync(e.data) : e.data;
    const crc = crc32(e.data);
    const local = Buffer.alloc(30 + name.length + 20);
    local.writeUInt32LE(0x04034b50, 0); local.writeUInt16LE(45, 4); local.writeUInt16LE(0, 6); local.writeUInt16LE(deflate ? 8 : 0, 8);
    local.writeUInt16LE(0, 10); local.writeUInt16LE(0x21, 12); local.writeUInt32LE(crc, 14);
    local.writeUInt32LE(0xffffffff, 18); local.writeUInt32LE(0xffffffff, 22);
    local.writeUInt16LE(name.length, 26); local.writeUInt16LE(20, 28); name.copy(local, 30);
    const x = 30 + name.length;
    local.writeUInt16LE(0x0001, x); local.writeUInt16LE(16, x + 2);
    local.writeBigUInt64LE(BigInt(e.data.length), x + 4); local.writeBigUInt64LE(BigInt(body.length), x + 12);
    const cd = Buffer.alloc(46 + name.length);
    cd.writeUInt32LE(0x02014b50, 0); cd.writeUInt16LE((3 << 8) | 45, 4); cd.writeUInt16LE(45, 6); cd.writeUInt16LE(0, 8); cd.writeUInt16LE(deflate ? 8 : 0, 10);
    cd.writeUInt16LE(0, 12); cd.writeUInt16LE(0x21, 14); cd.writeUInt32LE(crc, 16); cd.writeUInt32LE(body.length, 20); cd.writeUInt32LE(e.data.length, 24);
    cd.writeUInt16LE(name.length, 28); cd.writeUInt32LE((0o600 << 16) >>> 0, 38); cd.writeUInt32LE(offset, 42); name.copy(cd, 46);
    parts.push(local, body);
    central.push(cd);
    offset += local.length + body.length;
  }
  const cdBuf = Buffer.concat(central);
  const end = Buffer.alloc(22);
  end.writeUInt32LE(0x06054b50, 0); end.writeUInt16LE(entries.length, 8); end.writeUInt16LE(entries.length, 10);
  end.writeUInt32LE(cdBuf.length, 12); end.writeUInt32LE(offset, 16);
  return Buffer.concat([...parts, cdBuf, end]);
}

/** numpy.savez(file, **arrays) */
export async function writeNpz(file: string, arrays: { name: string; shape: number[]; values: Float32Array }[], deflate = false): Promise<void> {
  await writeFile(file, zipBytes(arrays.map((a) => ({ name: `${a.name}.npy`, data: npyBytes(a.values, a.shape) })), deflate));
}

/** safetensors.torch.save_file: header JSON padded with spaces to 8 bytes, tensors little-endian, row-major. */
export async function writeSafetensors(file: string, tensors: { name: string; shape: number[]; values: Float32Array }[]): Promise<void> {
  const header: Record<string, unknown> = { __metadata__: { format: 'pt' } };
  let at = 0;
  for (const t of tensors) { header[t.name] = { dtype: 'F32', shape: t.shape, data_offsets: [at, at + 4 * t.values.length] }; at += 4 * t.values.length; }
  let json = JSON.stringify(header);
  json += ' '.repeat((8 - (json.length % 8)) % 8);
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(json.length));
  const data = Buffer.alloc(at);
  let o = 0;
  for (const t of tensors) { t.values.forEach((v) => { data.writeFloatLE(v, o); o += 4; }); }
  await writeFile(file, Buffer.concat([len, Buffer.from(json, 'utf8'), data]));
}

/** Our (BiT) name → timm's, written independently of trainer/weights/bit-names.ts so the tests check that map. */
export function bitToTimm(name: string): string {
  const fixed: Record<string, string> = {
    'resnet/root_block/standardized_conv2d/kernel': 'stem.conv.weight', 'resnet/group_norm/gamma': 'norm.weight',
    'resnet/group_norm/beta': 'norm.bias', 'resnet/head/conv2d/kernel': 'head.fc.weight', 'resnet/head/conv2d/bias': 'head.fc.bias',
  };
  if (fixed[name]) return fixed[name];
  const m = /^resnet\/block(\d+)\/unit(\d+)\/(.*)$/.exec(name)!;
  const pre = `stages.${Number(m[1]) - 1}.blocks.${Number(m[2]) - 1}.`;
  const idx: Record<string, number> = { a: 1, b: 2, c: 3 };
  if (m[3] === 'a/proj/standardized_conv2d/kernel') return `${pre}downsample.conv.weight`;
  const g = /^([abc])\/group_norm\/(gamma|beta)$/.exec(m[3]);
  if (g) return `${pre}norm${idx[g[1]]}.${g[2] === 'gamma' ? 'weight' : 'bias'}`;
  const c = /^([abc])\/standardized_conv2d\/kernel$/.exec(m[3])!;
  return `${pre}conv${idx[c[1]]}.weight`;
}

/** HWIO → OIHW, as PyTorch stores conv kernels. */
export function hwioToOihw(values: Float32Array, shape: number[]): { values: Float32Array; shape: number[] } {
  const [h, w, i, o] = shape;
  const out = new Float32Array(values.length);
  for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) for (let b = 0; b < i; b++) for (let a = 0; a < o; a++) {
    out[((a * i + b) * h + y) * w + x] = values[((y * w + x) * i + b) * o + a];
  }
  return { values: out, shape: [o, i, h, w] };
}
