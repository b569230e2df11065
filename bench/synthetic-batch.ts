import { rngFor } from '../manifests/index.ts';
import { ROLE, type TrainBatch } from '../trainer/data.ts';

/** `--name value` from argv, else the default (the benches take a handful of plain flags). */
export function arg(name: string, def: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && process.argv[i + 1] ? process.argv[i + 1] : def;
}

/**
 * A synthetic batch in the trainer's layout, so step benches need no dataset: B originals with a square object
 * each, then (withGenerated) one CF and one F image per original. Seeded by `key`, so runs compare like for like.
 */
export function syntheticBatch(key: string, opts: { size: number; batch: number; classes: number; withGenerated: boolean }): TrainBatch {
  const { size: S, batch: B, classes: K, withGenerated } = opts;
  const rng = rngFor(key, withGenerated ? 1 : 0);
  const nOrig = B, n = withGenerated ? 3 * B : B;
  const x = new Float32Array(n * S * S * 3);
  for (let i = 0; i < x.length; i++) x[i] = 2 * rng.next() - 1;
  const objMask = new Float32Array(nOrig * S * S);
  for (let i = 0; i < nOrig; i++) {
    const x0 = rng.int(S / 2), y0 = rng.int(S / 2);
    for (let y = y0; y < y0 + S / 3; y++) for (let xx = x0; xx < x0 + S / 3; xx++) objMask[i * S * S + y * S + xx] = 1;
  }
  const role = new Uint8Array(n), parent = new Int32Array(n), term = new Int16Array(n).fill(-1), labels = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    const g = i % B;
    role[i] = i < B ? ROLE.orig : i < 2 * B ? ROLE.cf : ROLE.f;
    parent[i] = g;
    term[i] = i < B ? -1 : i < 2 * B ? 0 : 1;
    labels[i] = g % K;
  }
  return { size: S, nOrig, n, x, labels, role, parent, term, ids: Array.from({ length: n }, (_, i) => `b${i}`), objMask, maskUsable: new Uint8Array(nOrig).fill(1) };
}
