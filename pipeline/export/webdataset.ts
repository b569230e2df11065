import { createWriteStream } from 'node:fs';
import { extname } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { pack as tarPack } from 'tar-stream';
import type { ManifestKind } from '../../manifests/index.ts';
import { fullRow, type ExportRow } from './source.ts';

/**
 * One WebDataset shard: a plain ustar file holding, per row, `<key>.cls` (the label in decimal), `<key>.json` (the
 * manifest row) and `<key>.png` / `<key>.jpg` (the corpus file's bytes, untouched). Every header field that tar
 * would take from the machine is fixed, so the same corpus always gives byte-identical tars.
 */

/** Fixed header fields. mtime is 2000-01-01T00:00:00Z: GNU tar warns about the epoch ("implausibly old time stamp"). */
export const TAR_HEADER = { mode: 0o644, uid: 0, gid: 0, uname: '', gname: '', mtime: new Date(Date.UTC(2000, 0, 1)) } as const;

/**
 * A sample's key: split and position in the split's rows. WebDataset takes everything before the first dot of a
 * member's name as its key, and manifest ids hold dots and slashes, so the id travels in `.json` instead.
 */
export function sampleKey(split: string, index: number): string {
  return `${split}_${String(index).padStart(8, '0')}`;
}

/**
 * The members of one sample, in the order they are written (sorted by name, as `tar --sort=name` would). The JSON
 * holds every manifest column, null included (fullRow).
 */
export function sampleMembers(key: string, row: ExportRow, image: Uint8Array, kind: ManifestKind): { name: string; data: Uint8Array }[] {
  const ext = extname(row.image_path!).slice(1).toLowerCase() || 'png';
  const members = [
    { name: `${key}.cls`, data: Buffer.from(String(row.label)) },
    { name: `${key}.json`, data: Buffer.from(JSON.stringify(fullRow(row, kind))) },
    { name: `${key}.${ext}`, data: image },
  ];
  return members.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
}

/**
 * Write one tar shard to `file` from samples produced in order by `samples` (so only a few images are in memory at
 * a time). The caller renames the file into place.
 */
export async function writeTarShard(file: string, samples: AsyncIterable<{ name: string; data: Uint8Array }[]>): Promise<void> {
  const pack = tarPack();
  const written = pipeline(pack, createWriteStream(file));
  const feed = (async () => {
    for await (const members of samples) {
      for (const m of members) {
        await new Promise<void>((resolve, reject) => {
          pack.entry({ ...TAR_HEADER, name: m.name, size: m.data.byteLength, type: 'file' }, Buffer.from(m.data.buffer, m.data.byteOffset, m.data.byteLength), (err) => (err ? reject(err) : resolve()));
        });
      }
    }
    pack.finalize();
  })();
  try {
    await feed;
  } catch (e) {
    pack.destroy(e as Error);
    await written.catch(() => {});
    throw e;
  }
  await written;
}
