import { deflateRawSync } from 'node:zlib';

/**
 * Writers of numpy's formats, byte for byte what numpy writes, so a file we export is read by `np.load`, by timm's
 * `_load_weights` and by Google's BiT code (and by our readers, npy.ts / npz.ts) as a real release file:
 * - `.npy` format 1.0: magic, version, header dict padded with spaces to a 64-byte boundary (numpy ≥ 1.22 leaves
 *   room for the first axis to grow), then little-endian float32 in C order;
 * - `.npz` as numpy.savez writes it through Python's zipfile: one `<name>.npy` entry per array, every local header
 *   forced to zip64 (numpy gh-10776), stored, or deflated as numpy.savez_compressed does.
 * The entries carry a fixed 1980-01-01 date rather than the time of writing, so one checkpoint always gives the same
 * bytes (and digest).
 */

/** An array to write: its name, shape and float32 values in C (row-major) order. */
export interface NamedArray { name: string; shape: number[]; values: Float32Array }

const CRC_TABLE = (() => {
  const t = new Uint32Array(256);
  for (let n = 0; n < 256; n++) { let c = n; for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1; t[n] = c >>> 0; }
  return t;
})();

/** CRC-32 (zip's, IEEE 802.3). */
export function crc32(b: Uint8Array): number {
  let c = 0xffffffff;
  for (let i = 0; i < b.length; i++) c = CRC_TABLE[(c ^ b[i]) & 0xff] ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

/** Float32 values as little-endian bytes, whatever the host's byte order. */
export function float32LE(values: Float32Array): Buffer {
  const out = Buffer.alloc(values.length * 4);
  for (let i = 0; i < values.length; i++) out.writeFloatLE(values[i], i * 4);
  return out;
}

/** numpy.lib.format.write_array of a C-order little-endian float32 array (format 1.0). */
export function npyBytes(values: Float32Array, shape: number[]): Buffer {
  const n = shape.reduce((a, b) => a * b, 1);
  if (n !== values.length) throw new Error(`npyBytes: shape (${shape.join(', ')}) holds ${n} values, got ${values.length}`);
  const shapeRepr = shape.length === 1 ? `(${shape[0]},)` : `(${shape.join(', ')})`;
  let header = `{'descr': '<f4', 'fortran_order': False, 'shape': ${shapeRepr}, }`;
  header += ' '.repeat(shape.length ? 21 - String(shape[0]).length : 0);
  const hlen = header.length + 1;
  header += ' '.repeat(64 - ((10 + hlen) % 64)) + '\n';
  const head = Buffer.alloc(10);
  Buffer.from([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59, 1, 0]).copy(head);
  head.writeUInt16LE(header.length, 8);
  return Buffer.concat([head, Buffer.from(header, 'latin1'), float32LE(values)]);
}

/** Options of a zip: deflate the entries (savez_compressed), and an archive comment (ASCII, ≤ 65535 bytes). */
export interface ZipOptions { deflate?: boolean; comment?: string }

// Offsets and sizes of the central directory are 32-bit here: past 4 GiB numpy writes zip64 end records, which we
// do not; our checkpoints are far smaller, so refusing is simpler than writing a second layout nobody would test.
const ZIP32_LIMIT = 0xffffffff;

/** A zip as Python's zipfile writes numpy.savez's entries: zip64 extra field in every local header. */
export function zipBytes(entries: { name: string; data: Buffer }[], opts: ZipOptions = {}): Buffer {
  const deflate = opts.deflate ?? false;
  const comment = Buffer.from(opts.comment ?? '', 'latin1');
  if (comment.length > 0xffff || /[^\x20-\x7e]/.test(opts.comment ?? '')) throw new Error('zip comment must be printable ASCII of at most 65535 bytes');
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
    if (offset > ZIP32_LIMIT) throw new Error('the arrays exceed 4 GiB, which needs zip64 end records (not written here)');
  }
  const cdBuf = Buffer.concat(central);
  const end = Buffer.alloc(22);
  end.writeUInt32LE(0x06054b50, 0); end.writeUInt16LE(entries.length, 8); end.writeUInt16LE(entries.length, 10);
  end.writeUInt32LE(cdBuf.length, 12); end.writeUInt32LE(offset, 16); end.writeUInt16LE(comment.length, 20);
  return Buffer.concat([...parts, cdBuf, end, comment]);
}

/** The bytes of `numpy.savez(file, **arrays)` (or savez_compressed with `deflate`), entries in the given order. */
export function npzBytes(arrays: NamedArray[], opts: ZipOptions = {}): Buffer {
  return zipBytes(arrays.map((a) => ({ name: `${a.name}.npy`, data: npyBytes(a.values, a.shape) })), opts);
}
