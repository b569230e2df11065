import { describe, it, expect } from 'vitest';
import { rngFor } from '../manifests/rng.ts';
import { newMask, type Mask } from '../manifests/pixels.ts';
import { maskRuns } from '../pipeline/masks-ops.ts';
import { FastStream } from '../pipeline/infills/fast-stream.ts';
import { quantizedNormal, quantizedValue } from '../pipeline/infills/quantized-normal.ts';

/**
 * The building blocks of the faster kernels against their plain definitions: the bulk FastStream methods draw what
 * the one-at-a-time calls draw and leave the stream where those calls would; the packed alias table decides every
 * draw as the float compare does; maskRuns lists exactly the set pixels.
 */

const streams = (seed: string): [FastStream, FastStream] => [new FastStream(rngFor('kss', seed)), new FastStream(rngFor('kss', seed))];
const next = (s: FastStream): number[] => [s.u32(), s.u32(), s.u32()];

describe('FastStream bulk methods', () => {
  it('fillNormal gives normal() draws, slow paths included, and leaves the stream in step', () => {
    for (const seed of ['a', 'b']) {
      const [bulk, one] = streams(seed);
      const out = new Float64Array(50_000);
      // uneven pieces and an offset start, as the Random infill's rows use it
      for (let i = 0; i < out.length;) { const to = Math.min(out.length, i + 1 + (i % 977)); bulk.fillNormal(out, i, to); i = to; }
      const ref = new Float64Array(out.length);
      for (let i = 0; i < ref.length; i++) ref[i] = one.normal();
      expect(Buffer.compare(Buffer.from(out.buffer), Buffer.from(ref.buffer))).toBe(0);
      expect(next(bulk)).toEqual(next(one));
    }
  });

  it('shuffle and shuffleFirst draw as the int() loops they replace', () => {
    for (const n of [0, 1, 2, 7, 1000]) {
      const [bulk, one] = streams(`shuffle${n}`);
      const a = Int32Array.from({ length: n }, (_, i) => i * 3);
      const b = a.slice();
      bulk.shuffle(a);
      for (let i = b.length - 1; i > 0; i--) { const j = one.int(i + 1); const t = b[i]; b[i] = b[j]; b[j] = t; }
      expect(Array.from(a)).toEqual(Array.from(b));
      expect(next(bulk)).toEqual(next(one));

      const u = Uint8Array.from({ length: 3 * n + 5 }, (_, i) => i & 255);
      const v = u.slice();
      const k = Math.min(u.length, 3 * n);
      bulk.shuffleFirst(u, k);
      for (let i = 0; i < k; i++) { const j = i + one.int(v.length - i); const t = v[i]; v[i] = v[j]; v[j] = t; }
      expect(Array.from(u)).toEqual(Array.from(v));
      expect(next(bulk)).toEqual(next(one));
    }
  });
});

describe('quantizedValue', () => {
  it('decides every draw as the float threshold and alias do, at each threshold edge', () => {
    for (const [f, sigma] of [[0.5, 0], [0.3, 0.001], [0.3, 0.02], [0.5, 0.2], [0.02, 0.2], [0.97, 0.05], [0.3, 1.5], [1, 3]]) {
      const q = quantizedNormal(f, sigma);
      for (let i = 0; i < 256; i++) {
        const p = q.prob[i];
        const los = new Set([0, 1, 0xfffffe, 0xffffff]);
        for (const edge of [Math.floor(p), Math.ceil(p)]) for (const d of [-1, 0, 1]) if (edge + d >= 0 && edge + d <= 0xffffff) los.add(edge + d);
        for (const lo of los) {
          const r = ((i << 24) | lo) | 0;
          expect(quantizedValue(q.packed, 0, r), `f ${f} σ ${sigma} bucket ${i} lo ${lo}`).toBe(lo < p ? i : q.alias[i]);
        }
      }
    }
  });
});

describe('maskRuns', () => {
  function naive(m: Mask): number[] {
    const runs: number[] = [];
    for (let i = 0; i < m.data.length; i++) {
      if (!m.data[i]) continue;
      const s = i;
      while (i < m.data.length && m.data[i]) i++;
      runs.push(s, i);
    }
    return runs;
  }

  it('lists exactly the set pixels, for any byte values and any alignment of the data', () => {
    const rng = rngFor('kss-runs');
    for (let t = 0; t < 400; t++) {
      const w = 1 + rng.int(40), h = 1 + rng.int(12), offset = rng.int(4);
      const density = [0, 0.02, 0.3, 0.7, 0.98, 1][t % 6];
      const buf = new Uint8Array(w * h + 8).fill(t % 2 ? 255 : 0); // bytes around the view must not leak in
      const data = buf.subarray(offset, offset + w * h);
      for (let i = 0; i < data.length; i++) data[i] = rng.next() < density ? 1 + rng.int(255) : 0;
      const m = { width: w, height: h, data };
      expect(Array.from(maskRuns(m)), `${w}x${h}+${offset}`).toEqual(naive(m));
    }
    expect(Array.from(maskRuns(newMask(0, 0)))).toEqual([]);
  });
});
