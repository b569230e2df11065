import yauzl from 'yauzl';
import { UserError } from '../../manifests/errors.ts';
import { NpyFormatError, parseNpy, parseNpyHeader, type NpyArray } from './npy.ts';

/**
 * A `.npz` (numpy.savez: a zip of `<name>.npy` entries, stored or deflated, with numpy's forced zip64 local
 * headers) read entry by entry through yauzl, which reads the central directory and seeks to each entry, so a
 * multi-GB BiT-R152x4 file is never held in memory whole.
 */

/**
 * Every array of a .npz by its name (the entry name without `.npy`), in the zip's order. `headersOnly`: shapes
 * only (empty values), reading each entry's first bytes; the entry's size is still checked against its header.
 */
export async function readNpz(file: string, opts: { headersOnly?: boolean } = {}): Promise<Map<string, NpyArray>> {
  return (await readNpzFile(file, opts)).arrays;
}

/** readNpz, plus the zip's archive comment ('' when none; our exports keep their model config there, cfgen-meta.ts). */
export async function readNpzFile(file: string, opts: { headersOnly?: boolean } = {}): Promise<{ arrays: Map<string, NpyArray>; comment: string }> {
  let zip: yauzl.ZipFile;
  try {
    zip = await yauzl.openPromise(file, { autoClose: true, strictFileNames: false });
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new UserError(code === 'ENOENT' ? 'weights file not found' : `not a readable .npz (zip) file: ${(e as Error).message}`, {
      file,
      fix: code === 'ENOENT' ? 'check the path given to --init' : 'download it again (e.g. BiT-M-R50x1.npz, see docs/pretrained.md): it is truncated or not a numpy .npz',
    });
  }
  const out = new Map<string, NpyArray>();
  let entryName = '';
  try {
    for await (const entry of zip.eachEntry()) {
      entryName = entry.fileName;
      if (entryName.endsWith('/')) continue;
      if (!entryName.endsWith('.npy')) throw new NpyFormatError('not a .npy entry (a .npz holds only <name>.npy arrays)');
      const stream = await zip.openReadStreamPromise(entry);
      if (opts.headersOnly) {
        const h = parseNpyHeader(await readHead(stream));
        if (entry.uncompressedSize < h.dataStart + h.dataBytes) throw new NpyFormatError(`truncated data: shape (${h.shape.join(', ')}) ${h.descr} needs ${h.dataBytes} bytes, the entry has ${entry.uncompressedSize - h.dataStart}`);
        out.set(entryName.slice(0, -'.npy'.length), { shape: h.shape, values: new Float32Array(0), descr: h.descr });
      } else {
        out.set(entryName.slice(0, -'.npy'.length), parseNpy(await readAll(stream)));
      }
    }
  } catch (e) {
    zip.close();
    throw new UserError(`cannot read ${entryName ? `array ${entryName}` : 'the zip directory'}: ${(e as Error).message}`, {
      file, fix: 'download the file again: it is truncated or corrupt',
    });
  }
  if (out.size === 0) throw new UserError('the .npz holds no arrays', { file, fix: 'point --init at a BiT .npz such as BiT-M-R50x1.npz' });
  return { arrays: out, comment: typeof zip.comment === 'string' ? zip.comment : '' };
}

/** The first bytes of an entry: the .npy magic, version, header length and header (then the rest is not read). */
async function readHead(stream: NodeJS.ReadableStream & { destroy(): void }): Promise<Uint8Array> {
  const chunks: Buffer[] = [];
  let have = 0;
  for await (const c of stream) {
    chunks.push(c as Buffer);
    have += (c as Buffer).length;
    if (have < 12) continue;
    const b = Buffer.concat(chunks);
    const need = b[6] === 1 ? 10 + b.readUInt16LE(8) : 12 + b.readUInt32LE(8);
    if (have >= need || have > 2 ** 20) break;
  }
  stream.destroy();
  return Buffer.concat(chunks);
}

async function readAll(stream: NodeJS.ReadableStream): Promise<Uint8Array> {
  const chunks: Buffer[] = [];
  for await (const c of stream) chunks.push(c as Buffer);
  return chunks.length === 1 ? chunks[0] : Buffer.concat(chunks);
}
