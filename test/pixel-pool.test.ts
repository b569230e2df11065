import { describe, it, expect } from 'vitest';
import { poolStats, pooledCopy, release, takeBytes, takeInt32, takeZeroed } from '../pipeline/pixel-pool.ts';

describe('pixel pool (pipeline/pixel-pool.ts)', () => {
  it('hands a released buffer to the next take of its size class, and only once', () => {
    const a = takeBytes(150_528);
    expect(a.byteOffset).toBe(0);
    expect(a.length).toBe(150_528);
    expect(a.buffer.byteLength % 16_384).toBe(0);
    release(a);
    release(a); // a second release of the same buffer is ignored
    const b = takeBytes(150_000); // same 16 kB class
    expect(b.buffer).toBe(a.buffer);
    const c = takeBytes(150_528);
    expect(c.buffer).not.toBe(a.buffer); // it was handed out once only
    release(b, c);
  });

  it('ignores buffers it did not make, and views of any other size class get their own buffers', () => {
    const before = poolStats().buffers;
    release(new Uint8Array(1000), Buffer.alloc(50_000), null, undefined);
    expect(poolStats().buffers).toBe(before);
    const small = takeBytes(100);
    const big = takeBytes(100_000);
    expect(small.buffer).not.toBe(big.buffer);
    release(small, big);
  });

  it('takeZeroed clears what an earlier user left; pooledCopy equals slice()', () => {
    const dirty = takeBytes(50_176).fill(0xa5);
    release(dirty);
    const z = takeZeroed(50_176);
    expect(z.buffer).toBe(dirty.buffer);
    expect(z.every((v) => v === 0)).toBe(true);
    const src = Uint8Array.from({ length: 3000 }, (_, i) => (i * 7) & 255);
    release(z);
    const copy = pooledCopy(src);
    expect(Buffer.compare(copy, src.slice())).toBe(0);
    expect(copy.buffer).not.toBe(src.buffer);
    release(copy);
  });

  it('int32 views share the byte classes; a detached buffer is never handed out again', () => {
    const i = takeInt32(40_000);
    expect(i.length).toBe(40_000);
    release(i);
    const again = takeInt32(39_000);
    expect(again.buffer).toBe(i.buffer);
    // transferring a pooled buffer after its release detaches it: the pool drops it
    release(again);
    structuredClone(again.buffer, { transfer: [again.buffer as ArrayBuffer] });
    const next = takeInt32(39_000);
    expect(next.length).toBe(39_000);
    expect(next.buffer.byteLength).toBeGreaterThan(0);
  });
});
