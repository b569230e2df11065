/**
 * Reusable byte buffers for the per-image hot path of `generate` (cached masks, infill outputs, shuffle scratch).
 *
 * Why: V8 counts every ArrayBuffer's bytes as external memory and starts a full mark-compact of the whole heap each
 * time about 64 MB of it has piled up since the last one, whether or not the buffers are already garbage. A row
 * allocated about half a megabyte of fresh buffers (its two masks, each infill's output copy, a background mask),
 * so a one-method run did a full collection every 40 images or so, three times as often as bare sharp
 * decode + encode, and its background marking threads cost as much CPU as the infill itself (docs/benchmarks.md).
 * Buffers handed back here are reused by the next row instead.
 *
 * The contract is the caller's: `release` a buffer only when nothing can read it any more (its PNG is encoded and
 * written, its row is done). Buffers not born here are ignored by `release`, as are ones already released, so a
 * caller may release whatever it holds. What comes out of the pool is a view at offset 0 of a buffer rounded up to a
 * size class, so `.buffer` may be longer than the view; code that reads through `.buffer` must use byteOffset/length
 * (manifests/mask-geometry.ts alignedSpan does).
 */

import type { Mask } from '../manifests/pixels.ts';

/** Buffers are rounded up to a multiple of this, so sizes that differ a little (shuffle scratch) share a class. */
const CLASS_BYTES = 16 * 1024;
/** Free buffers kept per size class: a worker has a few rows in flight, each holding a handful of buffers. */
const MAX_FREE_PER_CLASS = 32;

const free = new Map<number, ArrayBuffer[]>();
/** Buffers this pool made (release ignores any other). */
const born = new WeakSet<ArrayBuffer>();
/** Buffers sitting in `free` (a second release of the same buffer is ignored). */
const idle = new WeakSet<ArrayBuffer>();

function take(bytes: number): ArrayBuffer {
  const cls = Math.max(CLASS_BYTES, Math.ceil(bytes / CLASS_BYTES) * CLASS_BYTES);
  const list = free.get(cls);
  while (list && list.length) {
    const ab = list.pop()!;
    idle.delete(ab);
    // a buffer transferred to another thread after its release is detached: drop it
    if (ab.byteLength === cls) return ab;
  }
  const ab = new ArrayBuffer(cls);
  born.add(ab);
  return ab;
}

/** n bytes whose contents are left over from earlier use: for callers that write every byte. */
export function takeBytes(n: number): Uint8Array {
  return new Uint8Array(take(n), 0, n);
}

/** n zero bytes. */
export function takeZeroed(n: number): Uint8Array {
  return takeBytes(n).fill(0);
}

/** An all-zero width × height mask in a pooled buffer (what manifests/pixels.ts newMask gives). */
export function takeMask(width: number, height: number): Mask {
  return { width, height, data: takeZeroed(width * height) };
}

/** A copy of `src` in a pooled buffer (what `src.slice()` gives). */
export function pooledCopy(src: Uint8Array): Uint8Array {
  const out = takeBytes(src.length);
  out.set(src);
  return out;
}

/** n int32 whose contents are left over from earlier use. */
export function takeInt32(n: number): Int32Array {
  return new Int32Array(take(n * 4), 0, n);
}

/** Hand buffers back for reuse; views of buffers this pool did not make, or already released, are ignored. */
export function release(...views: (ArrayBufferView | null | undefined)[]): void {
  for (const v of views) {
    if (!v) continue;
    const ab = v.buffer as ArrayBuffer;
    if (!born.has(ab) || idle.has(ab) || ab.byteLength === 0) continue;
    let list = free.get(ab.byteLength);
    if (!list) free.set(ab.byteLength, (list = []));
    if (list.length >= MAX_FREE_PER_CLASS) continue;
    idle.add(ab);
    list.push(ab);
  }
}

/** Buffers sitting free, and their bytes (tests). */
export function poolStats(): { buffers: number; bytes: number } {
  let buffers = 0, bytes = 0;
  for (const [cls, list] of free) { buffers += list.length; bytes += cls * list.length; }
  return { buffers, bytes };
}
