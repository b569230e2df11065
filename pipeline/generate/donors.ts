import { rngFor, type Rng } from '../../manifests/rng.ts';
import type { SourceRow } from '../../manifests/schema.ts';

/**
 * Seeded donor choice for the methods that mix images (Mixed-Rand: another class's background; batch-scope
 * Shuffle: a pixel pool). Offline there is no training batch, so the "group" is the image's split: every usable
 * row of the same split. We deliberately do NOT narrow it by the `group` column: on Waterbirds that column encodes
 * the label ("y=1,place=0"), so no other class would be left, and on CCT it is the camera, where a same-location
 * background would keep the very location cue Mixed-Rand is meant to break.
 *
 * The draw uses its own stream, rngFor(seed, source_id, method, variant, 'donors'), so the infill's stream
 * rngFor(seed, source_id, method, variant) is the same with or without donors.
 */
export class DonorIndex {
  /** per split: rows sorted by label (stable), with each label's [start, count); built on first use */
  private built: Map<string, { rows: SourceRow[]; ranges: Map<number, [number, number]>; pos: Map<string, number> }> | null = null;

  // Built when a method first asks for donors: a run of methods that draw none (every CF method, F-Random) would
  // otherwise hold a second sorted copy of the rows and an id map, 10–20 MB at 100k images.
  constructor(private readonly rows: readonly SourceRow[]) {}

  private get splits(): NonNullable<DonorIndex['built']> {
    return (this.built ??= DonorIndex.build(this.rows));
  }

  private static build(rows: readonly SourceRow[]): NonNullable<DonorIndex['built']> {
    const splits: NonNullable<DonorIndex['built']> = new Map();
    const bySplit = new Map<string, SourceRow[]>();
    for (const r of rows) {
      if (r.status !== 'ok' || (!r.mask_path && !(r.boxes && r.boxes.length >= 4))) continue;
      let list = bySplit.get(r.split);
      if (!list) bySplit.set(r.split, (list = []));
      list.push(r);
    }
    for (const [split, list] of bySplit) {
      const sorted = list.map((r, i) => ({ r, i })).sort((a, b) => a.r.label - b.r.label || a.i - b.i).map((x) => x.r);
      const ranges = new Map<number, [number, number]>();
      sorted.forEach((r, i) => {
        const rg = ranges.get(r.label);
        if (rg) rg[1]++;
        else ranges.set(r.label, [i, 1]);
      });
      splits.set(split, { rows: sorted, ranges, pos: new Map(sorted.map((r, i) => [r.id, i])) });
    }
    return splits;
  }

  /** Number of classes with a usable image in a split. */
  classesIn(split: string): number {
    return this.splits.get(split)?.ranges.size ?? 0;
  }

  /**
   * Up to n distinct donors for `row`, uniformly from its split (excluding itself), or from the split's rows of
   * other labels when otherClass. Deterministic in (seed, row id, method, variant).
   */
  candidates(row: SourceRow, n: number, otherClass: boolean, seed: number, method: string, variant: number): SourceRow[] {
    const s = this.splits.get(row.split);
    if (!s || n <= 0) return [];
    // the pool is the sorted rows minus one contiguous range: the row's label (otherClass) or the row itself
    let skipStart: number, skipLen: number;
    if (otherClass) {
      const rg = s.ranges.get(row.label);
      [skipStart, skipLen] = rg ?? [0, 0];
    } else {
      const p = s.pos.get(row.id);
      [skipStart, skipLen] = p === undefined ? [0, 0] : [p, 1];
    }
    const size = s.rows.length - skipLen;
    const picks = sampleDistinct(size, Math.min(n, size), rngFor(seed, row.id, method, variant, 'donors'));
    return picks.map((k) => s.rows[k < skipStart ? k : k + skipLen]);
  }
}

/** k distinct integers from [0, n), in draw order. */
function sampleDistinct(n: number, k: number, rng: Rng): number[] {
  if (k <= 0) return [];
  if (k * 4 >= n) {
    const all = Array.from({ length: n }, (_, i) => i);
    for (let i = 0; i < k; i++) {
      const j = i + rng.int(n - i);
      const t = all[i]; all[i] = all[j]; all[j] = t;
    }
    return all.slice(0, k);
  }
  const seen = new Set<number>();
  const out: number[] = [];
  while (out.length < k) {
    const v = rng.int(n);
    if (!seen.has(v)) { seen.add(v); out.push(v); }
  }
  return out;
}
