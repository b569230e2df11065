import type { Rng } from '../../manifests/rng.ts';

/**
 * A fast random stream for the infills' per-pixel loops, derived from the item rng: an sfc32 generator (the same
 * algorithm as manifests/rng.ts) whose 128-bit state is the item rng's next four 32-bit draws. It is still a pure
 * function of rngFor(seed, source_id, method, variant); it only keeps its state in an Int32Array, which spares V8
 * a heap number per draw (the closure-based Rng costs ~20× more per call, and an infill makes ~10^5 calls).
 *
 * normal() is the Marsaglia–Tsang (2000) ziggurat with 128 layers: one 32-bit draw and a table lookup for ~98.8%
 * of samples, exact N(0, 1) overall (tail by Marsaglia's exponential method, wedges by rejection).
 */
export class FastStream {
  /**
   * The sfc32 state [a, b, c, d]. Per-pixel loops may copy it into locals, step sfc32 inline exactly as i32() does,
   * and store it back after the loop (V8 keeps locals in registers, not the array): the stream then continues as if
   * every draw had gone through i32().
   */
  readonly state = new Int32Array(4);

  constructor(rng: Rng) {
    for (let i = 0; i < 4; i++) this.state[i] = Math.floor(rng.next() * 4294967296) | 0;
    for (let i = 0; i < 12; i++) this.u32();
  }

  /** a uniform 32-bit integer, as a signed int32 */
  i32(): number {
    const s = this.state;
    const a = s[0], b = s[1], c = s[2], d = s[3];
    const t = (a + b) | 0;
    const dd = (d + 1) | 0;
    const r = (t + dd) | 0;
    s[0] = b ^ (b >>> 9);
    s[1] = (c + (c << 3)) | 0;
    s[2] = (((c << 21) | (c >>> 11)) + r) | 0;
    s[3] = dd;
    return r;
  }

  u32(): number {
    return this.i32() >>> 0;
  }

  /** uniform in [0, 1) */
  uniform(): number {
    return (this.i32() >>> 0) / 4294967296;
  }

  /** integer in [0, n), n ≤ 2^32 */
  int(n: number): number {
    return Math.floor(((this.i32() >>> 0) / 4294967296) * n);
  }

  normal(): number {
    const hz = this.i32();
    const iz = hz & 127;
    if (Math.abs(hz) < KN[iz]) return hz * WN[iz];
    return this.normalSlow(hz, iz);
  }

  /**
   * Fisher–Yates in place, drawing exactly as `for (i = n − 1; i > 0; i--) swap(a[i], a[int(i + 1)])` would,
   * with the stream state held in locals.
   */
  shuffle(a: Int32Array): void {
    const s = this.state;
    let sa = s[0], sb = s[1], sc = s[2], sd = s[3];
    for (let i = a.length - 1; i > 0; i--) {
      const t = (sa + sb) | 0;
      sd = (sd + 1) | 0;
      const r = (t + sd) | 0;
      sa = sb ^ (sb >>> 9);
      sb = (sc + (sc << 3)) | 0;
      sc = (((sc << 21) | (sc >>> 11)) + r) | 0;
      const j = Math.floor(((r >>> 0) / 4294967296) * (i + 1)); // int(i + 1)
      const v = a[i]; a[i] = a[j]; a[j] = v;
    }
    s[0] = sa; s[1] = sb; s[2] = sc; s[3] = sd;
  }

  /**
   * Partial Fisher–Yates: afterwards a[0..k) is a uniform sample without replacement of a's values, in random
   * order. Draws exactly as `for (i = 0; i < k; i++) swap(a[i], a[i + int(n − i)])` would.
   */
  shuffleFirst(a: Uint8Array, k: number): void {
    const s = this.state;
    let sa = s[0], sb = s[1], sc = s[2], sd = s[3];
    const n = a.length;
    for (let i = 0; i < k; i++) {
      const t = (sa + sb) | 0;
      sd = (sd + 1) | 0;
      const r = (t + sd) | 0;
      sa = sb ^ (sb >>> 9);
      sb = (sc + (sc << 3)) | 0;
      sc = (((sc << 21) | (sc >>> 11)) + r) | 0;
      const j = i + Math.floor(((r >>> 0) / 4294967296) * (n - i)); // i + int(n − i)
      const v = a[i]; a[i] = a[j]; a[j] = v;
    }
    s[0] = sa; s[1] = sb; s[2] = sc; s[3] = sd;
  }

  /** out[from..to) ← successive normal() draws; the same values, with the stream state held in locals. */
  fillNormal(out: Float64Array, from: number, to: number): void {
    const s = this.state;
    let a = s[0], b = s[1], c = s[2], d = s[3];
    for (let i = from; i < to; i++) {
      // i32(), inlined
      const t = (a + b) | 0;
      d = (d + 1) | 0;
      const hz = (t + d) | 0;
      a = b ^ (b >>> 9);
      b = (c + (c << 3)) | 0;
      c = (((c << 21) | (c >>> 11)) + hz) | 0;
      const iz = hz & 127;
      if (Math.abs(hz) < KN[iz]) {
        out[i] = hz * WN[iz];
      } else {
        // the rare slow path draws through this.state: hand it the current state, then take it back
        s[0] = a; s[1] = b; s[2] = c; s[3] = d;
        out[i] = this.normalSlow(hz, iz);
        a = s[0]; b = s[1]; c = s[2]; d = s[3];
      }
    }
    s[0] = a; s[1] = b; s[2] = c; s[3] = d;
  }

  private normalSlow(hz: number, iz: number): number {
    const r = 3.442619855899;
    for (;;) {
      const x = hz * WN[iz];
      if (iz === 0) {
        // the tail beyond r: Marsaglia's method
        let xx: number, y: number;
        do {
          xx = -Math.log(1 - this.uniform()) / r;
          y = -Math.log(1 - this.uniform());
        } while (y + y < xx * xx);
        return hz > 0 ? r + xx : -r - xx;
      }
      if (FN[iz] + this.uniform() * (FN[iz - 1] - FN[iz]) < Math.exp(-0.5 * x * x)) return x;
      hz = this.i32();
      iz = hz & 127;
      if (Math.abs(hz) < KN[iz]) return hz * WN[iz];
    }
  }
}

// Ziggurat tables (Marsaglia & Tsang's zigset for 128 layers, scaled for signed 32-bit draws).
const KN = new Float64Array(128);
const WN = new Float64Array(128);
const FN = new Float64Array(128);
{
  const m1 = 2147483648.0;
  let dn = 3.442619855899;
  let tn = dn;
  const vn = 9.91256303526217e-3;
  const q = vn / Math.exp(-0.5 * dn * dn);
  KN[0] = Math.floor((dn / q) * m1);
  KN[1] = 0;
  WN[0] = q / m1;
  WN[127] = dn / m1;
  FN[0] = 1.0;
  FN[127] = Math.exp(-0.5 * dn * dn);
  for (let i = 126; i >= 1; i--) {
    dn = Math.sqrt(-2 * Math.log(vn / dn + Math.exp(-0.5 * dn * dn)));
    KN[i + 1] = Math.floor((dn / tn) * m1);
    tn = dn;
    FN[i] = Math.exp(-0.5 * dn * dn);
    WN[i] = dn / m1;
  }
}
