import { createHash, randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { mkdir, readdir, rename, rm, stat, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { resolveInsideRoot } from '../../manifests/masks.ts';
import type { Mask } from '../../manifests/pixels.ts';
import { release, takeMask } from '../pixel-pool.ts';
import type { SourceRow } from '../../manifests/schema.ts';
import { stableStringify } from '../../manifests/io.ts';
import { TOOL_VERSION } from '../../manifests/version.ts';
import type { MaskKind } from '../infills/types.ts';

/**
 * The mask cache: a source row's prepared masks (object and CF hole at the output size), decoded once per dataset
 * and reused by every method, every worker thread and every later `generate` job. Users run one method per job, and
 * each such run otherwise spends a fifth of its CPU time decoding mask PNGs that every other job decodes too
 * (docs/benchmarks.md).
 *
 * Entries are content-addressed: the key hashes the mask file's bytes (and the image's, for `nofg-diff` masks), the
 * row fields that decide the masks and the output size, so an entry can never describe other inputs, whatever was
 * renamed, moved or rebuilt; nothing needs invalidating. Each entry carries the SHA-256 of its own bytes and is
 * written atomically, so a damaged entry reads as a miss and is rewritten. Deleting the folder is always safe.
 */

/** Bump when the masks prepareRow derives from the same inputs change: old entries then simply stop matching. */
export const MASK_CACHE_VERSION = 1;
/** The cache folder's name, in `<corpora-root>/<dataset>/`. */
export const MASK_CACHE_FOLDER = '.mask-cache';
/** `CFGEN_MASK_CACHE=off` turns the cache off (benchmarks, tests, a read-only corpora folder). */
export const MASK_CACHE_ENV = 'CFGEN_MASK_CACHE';

/** The masks prepareRow hands the infills, as the cache stores them. */
export interface CachedMasks {
  object: Mask;
  box: Mask;
  objectKind: MaskKind;
}

/**
 * The cache folder of a generate run: `<corpora-root>/<dataset>/.mask-cache`, beside its corpus folders (every
 * method's folder has that parent), or null when the cache is turned off or the run has no method yet.
 */
export function maskCacheFor(ctx: { methods: Record<string, { dir: string }> }, env: NodeJS.ProcessEnv = process.env): string | null {
  if (/^(off|0|false|no)$/i.test(env[MASK_CACHE_ENV] ?? '')) return null;
  const first = Object.values(ctx.methods)[0];
  return first ? join(dirname(first.dir), MASK_CACHE_FOLDER) : null;
}

/**
 * The cache key of a row's masks at width × height, or null when a file it hashes cannot be read (the caller then
 * decodes as usual, which reports the problem the same way with or without a cache).
 */
export async function maskCacheKey(root: string, row: SourceRow, width: number, height: number): Promise<string | null> {
  if (!row.mask_path) return null;
  try {
    const files = [row.mask_path, ...(row.mask_format === 'nofg-diff' ? [row.path] : [])];
    // read synchronously, as the entry is (readMaskEntry says why)
    const hashes = files.map((f) => createHash('sha256').update(readFileSync(resolveInsideRoot(root, f, 'source manifest'))).digest('hex'));
    return createHash('sha256').update(stableStringify({
      v: MASK_CACHE_VERSION, tool: TOOL_VERSION, mask_format: row.mask_format, files: hashes, boxes: row.boxes,
      stored: [row.width, row.height], out: [width, height],
    })).digest('hex');
  } catch {
    return null;
  }
}

/** Where the entry of `key` lives: 256 sub-folders, so no folder grows past a few thousand files. */
export function maskEntryPath(dir: string, key: string): string {
  return join(dir, key.slice(0, 2), `${key}.mask`);
}

// ---- entry format ------------------------------------------------------------------------------------------------
// 'CFMC' | version u8 | kind u8 (0 seg, 1 box) | 2 zero bytes | width u32 | height u32 | key (32 bytes)
// | object RLE length u32 | box RLE length u32 | object RLE | box RLE | SHA-256 of everything before it (32 bytes)
const MAGIC = 0x434d4643; // 'CFMC' read little-endian
const HEADER = 56;
const DIGEST = 32;

/**
 * Run-length code of a 0/1 mask: alternating run lengths, background first (so a mask starting on the object
 * starts with a 0 run), each an unsigned LEB128 varint. A 224² ellipse takes about 500 bytes instead of 50 kB.
 */
export function encodeRle(m: Mask): Uint8Array {
  const out: number[] = [];
  const d = m.data;
  let cur = 0, i = 0;
  while (i < d.length) {
    let j = i;
    while (j < d.length && (d[j] ? 1 : 0) === cur) j++;
    for (let n = j - i; ; ) { const b = n & 0x7f; n >>>= 7; if (n) out.push(b | 0x80); else { out.push(b); break; } }
    cur ^= 1;
    i = j;
  }
  return Uint8Array.from(out);
}

/** Decode encodeRle's bytes into a width × height mask; null if they do not cover exactly width × height pixels. */
export function decodeRle(bytes: Uint8Array, width: number, height: number): Mask | null {
  // pooled: processRow hands a row's masks back once the row is written (pixel-pool.ts says why)
  const m = takeMask(width, height);
  if (fillRuns(bytes, m.data)) return m;
  release(m.data);
  return null;
}

/** Set the runs of `bytes` in the zeroed `out`; false unless they cover exactly out.length pixels. */
function fillRuns(bytes: Uint8Array, out: Uint8Array): boolean {
  const total = out.length;
  let p = 0, cur = 0, i = 0;
  while (i < bytes.length) {
    let n = 0, shift = 0, b: number;
    do {
      if (i >= bytes.length || shift > 28) return false;
      b = bytes[i++];
      n += (b & 0x7f) * 2 ** shift;
      shift += 7;
    } while (b & 0x80);
    if (p + n > total) return false;
    if (cur) out.fill(1, p, p + n);
    p += n;
    cur ^= 1;
  }
  return p === total;
}

/** An entry's bytes (exported for tests). */
export function encodeEntry(key: string, masks: CachedMasks): Uint8Array {
  const obj = encodeRle(masks.object), box = encodeRle(masks.box);
  const buf = Buffer.alloc(HEADER + obj.length + box.length + DIGEST);
  buf.writeUInt32LE(MAGIC, 0);
  buf.writeUInt8(MASK_CACHE_VERSION, 4);
  buf.writeUInt8(masks.objectKind === 'seg' ? 0 : 1, 5);
  buf.writeUInt32LE(masks.object.width, 8);
  buf.writeUInt32LE(masks.object.height, 12);
  buf.write(key, 16, 32, 'hex');
  buf.writeUInt32LE(obj.length, 48);
  buf.writeUInt32LE(box.length, 52);
  buf.set(obj, HEADER);
  buf.set(box, HEADER + obj.length);
  const end = buf.length - DIGEST;
  createHash('sha256').update(buf.subarray(0, end)).digest().copy(buf, end);
  return buf;
}

/** Parse and check an entry: null unless it is whole, for this key and size, and its digest matches. */
export function decodeEntry(bytes: Uint8Array, key: string, width: number, height: number): CachedMasks | null {
  const buf = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (buf.length < HEADER + DIGEST || buf.readUInt32LE(0) !== MAGIC || buf.readUInt8(4) !== MASK_CACHE_VERSION) return null;
  if (buf.readUInt32LE(8) !== width || buf.readUInt32LE(12) !== height || buf.toString('hex', 16, 48) !== key) return null;
  const objLen = buf.readUInt32LE(48), boxLen = buf.readUInt32LE(52);
  const end = buf.length - DIGEST;
  if (HEADER + objLen + boxLen !== end) return null;
  if (!createHash('sha256').update(buf.subarray(0, end)).digest().equals(buf.subarray(end))) return null;
  const object = decodeRle(buf.subarray(HEADER, HEADER + objLen), width, height);
  const box = decodeRle(buf.subarray(HEADER + objLen, end), width, height);
  if (!object || !box) { release(object?.data, box?.data); return null; }
  return { object, box, objectKind: buf.readUInt8(5) === 0 ? 'seg' : 'box' };
}

/** The cached masks of `key`, or null on a miss (no entry, or one that fails its checks). */
export async function readMaskEntry(dir: string, key: string, width: number, height: number): Promise<CachedMasks | null> {
  let bytes: Uint8Array;
  try {
    // Synchronous on purpose: an entry is a few hundred bytes, and node's async readFile (open, fstat, read, close,
    // each a thread-pool round trip) cost about 60 µs of CPU per small file against 6 µs read in place: with the key's
    // read, a tenth of a one-method job's CPU beyond bare sharp (docs/benchmarks.md). sharp's decodes and encodes keep
    // running on their own threads meanwhile.
    bytes = readFileSync(maskEntryPath(dir, key));
  } catch {
    return null;
  }
  return decodeEntry(bytes, key, width, height);
}

/**
 * Store the masks of `key`: a temp file renamed into place, so a reader sees a whole entry or none. Two workers
 * writing the same entry write the same bytes. No fsync (unlike corpus files): an entry cut short by a crash fails
 * its digest and reads as a miss. A failed write (read-only folder, full disk) only costs the next run a decode, so
 * it is ignored.
 */
export async function writeMaskEntry(dir: string, key: string, masks: CachedMasks): Promise<void> {
  const file = maskEntryPath(dir, key);
  const tmp = `${file}.tmp-${process.pid}-${randomBytes(4).toString('hex')}`;
  try {
    const bytes = encodeEntry(key, masks);
    try {
      await writeFile(tmp, bytes);
    } catch (e) {
      // the folder is made only when missing: a recursive mkdir before every write costs more than the write
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
      await mkdir(dirname(file), { recursive: true });
      await writeFile(tmp, bytes);
    }
    await rename(tmp, file);
  } catch {
    await rm(tmp, { force: true }).catch(() => {});
  }
}

const TEMP_NAME = /\.tmp-(\d+)-[0-9a-f]+$/;

function pidAlive(pid: number): boolean {
  try { process.kill(pid, 0); return true; } catch (e) { return (e as NodeJS.ErrnoException).code === 'EPERM'; }
}

/**
 * Remove the temp files a killed writer left in the cache: those of a process that is gone from this machine, and
 * any older than `maxAgeMs` (an entry's temp file lives for milliseconds; on shared storage the pid may be another
 * machine's, and a writer whose temp file vanished only skips that entry). Returns how many were removed.
 */
export async function sweepMaskCacheTemps(dir: string | null, maxAgeMs = 60_000): Promise<number> {
  if (!dir) return 0;
  let buckets: string[];
  try { buckets = await readdir(dir); } catch { return 0; }
  let removed = 0;
  const now = Date.now();
  for (const b of buckets) {
    let names: string[];
    try { names = await readdir(join(dir, b)); } catch { continue; }
    for (const n of names) {
      const m = TEMP_NAME.exec(n);
      if (!m) continue;
      const file = join(dir, b, n);
      let old = false;
      try { old = now - (await stat(file)).mtimeMs > maxAgeMs; } catch { continue; }
      if (old || !pidAlive(Number(m[1]))) {
        await rm(file, { force: true });
        removed++;
      }
    }
  }
  return removed;
}
