import { float32LE, type NamedArray } from './write-npz.ts';

/**
 * The bytes of `safetensors.torch.save_file(tensors, metadata=…)`: an 8-byte little-endian header length, the JSON
 * header (`__metadata__` first, its values strings; then each tensor's dtype, shape and data_offsets) padded with
 * spaces to a multiple of 8, then the tensors' little-endian bytes. Like the Rust serializer, tensors of one dtype are
 * laid out sorted by name, so the file does not depend on the order they were given in.
 */
export function safetensorsBytes(tensors: NamedArray[], metadata: Record<string, string> = { format: 'pt' }): Buffer {
  const sorted = [...tensors].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  for (let i = 1; i < sorted.length; i++) if (sorted[i].name === sorted[i - 1].name) throw new Error(`safetensorsBytes: tensor ${sorted[i].name} given twice`);
  const header: Record<string, unknown> = { __metadata__: metadata };
  let at = 0;
  for (const t of sorted) {
    const n = t.shape.reduce((a, b) => a * b, 1);
    if (n !== t.values.length) throw new Error(`safetensorsBytes: ${t.name} has shape [${t.shape.join(', ')}] (${n} values) but ${t.values.length} values`);
    header[t.name] = { dtype: 'F32', shape: t.shape, data_offsets: [at, at + 4 * n] };
    at += 4 * n;
  }
  let json = JSON.stringify(header);
  json += ' '.repeat((8 - (Buffer.byteLength(json, 'utf8') % 8)) % 8);
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(Buffer.byteLength(json, 'utf8')));
  return Buffer.concat([len, Buffer.from(json, 'utf8'), ...sorted.map((t) => float32LE(t.values))]);
}
