import type { FastStream } from './fast-stream.ts';

/**
 * Exact sampling of round(255 · clip(f + σZ, 0, 1)) for a fixed f: the uint8 result has 256 possible values whose
 * probabilities come from the normal CDF, so one 32-bit draw through a Walker/Vose alias table gives the same
 * distribution as drawing Z and rounding, about 5× cheaper. The Random infill uses it when its colour field is flat
 * (the default 1×1 grid); probabilities are exact to the erfc approximation (~1e-7) and the 24-bit alias threshold.
 */
export interface QuantizedNormal {
  prob: Float64Array;
  alias: Uint8Array;
  /**
   * prob and alias packed for the sampler, one int32 per top byte i: `(a << 24) | t` with t < 2^24, such that the
   * draw r gives `(r & 0xffffff) < t ? i : a`, the same value as comparing against prob[i] and taking alias[i].
   */
  packed: Int32Array;
}

export function quantizedNormal(f: number, sigma: number): QuantizedNormal {
  const p = new Float64Array(256);
  if (sigma <= 0) {
    p[Math.min(255, Math.max(0, Math.floor(Math.min(1, Math.max(0, f)) * 255 + 0.5)))] = 1;
  } else {
    // P(k) = P((k − ½)/255 ≤ f + σZ < (k + ½)/255), the two ends taking the clipped mass
    let prev = 0;
    for (let k = 0; k < 256; k++) {
      const cdf = k === 255 ? 1 : normalCdf(((k + 0.5) / 255 - f) / sigma);
      p[k] = Math.max(0, cdf - prev);
      prev = cdf;
    }
  }
  return aliasTable(p);
}

export function sampleQuantized(q: QuantizedNormal, s: FastStream): number {
  return quantizedValue(q.packed, 0, s.i32());
}

/**
 * The sampled value for the 32-bit draw r (any int32) from a packed table stored at `packed[base..base + 256)`.
 * Branch-free because the compare is a coin flip for most buckets: r's low 24 bits and the threshold t are both in
 * [0, 2^24), so their difference never overflows and its sign bit is exactly "low < t".
 */
export function quantizedValue(packed: Int32Array, base: number, r: number): number {
  const i = r >>> 24;
  const e = packed[base + i];
  const less = ((r & 0xffffff) - (e & 0xffffff)) >> 31;
  return (i & less) | ((e >>> 24) & ~less);
}

/** Vose's alias method; prob[i] is stored pre-scaled to 24 bits, the scale of the thresholds in `packed`. */
function aliasTable(p: Float64Array): QuantizedNormal {
  const n = p.length;
  let total = 0;
  for (let i = 0; i < n; i++) total += p[i];
  const scaled = new Float64Array(n);
  for (let i = 0; i < n; i++) scaled[i] = (p[i] * n) / total;
  const prob = new Float64Array(n);
  const alias = new Uint8Array(n);
  // two stacks in one buffer (small from the bottom, large from the top); each index is on at most one
  const stack = new Int32Array(n);
  let ns = 0, nl = 0;
  for (let i = n - 1; i >= 0; i--) {
    if (scaled[i] < 1) stack[ns++] = i;
    else stack[n - 1 - nl++] = i;
  }
  while (ns > 0 && nl > 0) {
    const s = stack[--ns], l = stack[n - nl--];
    prob[s] = scaled[s];
    alias[s] = l;
    scaled[l] = scaled[l] + scaled[s] - 1;
    if (scaled[l] < 1) stack[ns++] = l;
    else stack[n - 1 - nl++] = l;
  }
  // what is left keeps itself: the large, and the small that rounding left over
  for (let k = 0; k < ns; k++) { prob[stack[k]] = 1; alias[stack[k]] = stack[k]; }
  for (let k = 0; k < nl; k++) { prob[stack[n - 1 - k]] = 1; alias[stack[n - 1 - k]] = stack[n - 1 - k]; }
  for (let i = 0; i < n; i++) prob[i] *= 16777216;
  return { prob, alias, packed: pack(prob, alias) };
}

/**
 * For an integer lo in [0, 2^24): lo < prob ⇔ lo < ceil(prob), so an integer threshold t = ceil(prob) decides
 * alike. t ≥ 2^24 always keeps i, which is the same as t = 0 with alias i; t ≤ 0, or a NaN prob (which no
 * compare passes), always takes the alias, so t = 0 there too. What is left fits in 24 bits under the alias byte.
 */
function pack(prob: Float64Array, alias: Uint8Array): Int32Array {
  const out = new Int32Array(prob.length);
  for (let i = 0; i < prob.length; i++) {
    const t = Math.ceil(prob[i]);
    if (t >= 16777216) out[i] = i << 24;
    else if (t > 0) out[i] = (alias[i] << 24) | t;
    else out[i] = alias[i] << 24;
  }
  return out;
}

/** Φ(x) via erfc (Numerical Recipes' Chebyshev fit, fractional error < 1.2e-7 everywhere). */
export function normalCdf(x: number): number {
  return 0.5 * erfc(-x / Math.SQRT2);
}

function erfc(x: number): number {
  const z = Math.abs(x);
  const t = 1 / (1 + 0.5 * z);
  const r = t * Math.exp(-z * z - 1.26551223 + t * (1.00002368 + t * (0.37409196 + t * (0.09678418 + t * (-0.18628806 +
    t * (0.27886807 + t * (-1.13520398 + t * (1.48851587 + t * (-0.82215223 + t * 0.17087277)))))))));
  return x >= 0 ? r : 2 - r;
}
