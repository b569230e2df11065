import { rngFor, type Rng } from '../../manifests/rng.ts';
import type { SourceRow } from '../../manifests/schema.ts';
import type { DonorVariant } from './variants.ts';

/**
 * Who gives a background to whom in the stress test. Donors come from the same split as the image, among the rows
 * the stress test itself uses (status ok, with a mask or boxes), so every background has an object to remove:
 *
 * - `mixed_same`: another image of class y (never the image itself);
 * - `mixed_rand`: a uniformly drawn other class, then an image of it (Xiao et al.: "a random class");
 * - `mixed_next`: an image of class (y + 1) mod K. The same pairing feeds the next-class shift (paper Table 3);
 * - `attr_flip`: an image whose spurious attribute (Waterbirds `place`, CCT `location`) differs from the image's.
 *
 * Candidates come in a seeded order, rngFor(seed, source_id, 'stress-test', variant, 'donors'): the first usable one is
 * taken (decodes, and its box leaves background to tile), so a bad donor file changes that one image only.
 */

/** The dataset's spurious attribute, when it has one. */
export type SpuriousAttribute = 'place' | 'location';

/** The attribute's value on a row, as a string (null: the row has none). */
export function attributeOf(row: Pick<SourceRow, 'place' | 'location'>, attr: SpuriousAttribute | null): string | null {
  if (attr === 'place') return row.place === null || row.place === undefined ? null : String(row.place);
  if (attr === 'location') return row.location ?? null;
  return null;
}

/** `place` when any row has one (Waterbirds), else `location` when any row has one (CCT), else null. */
export function detectAttribute(rows: readonly Pick<SourceRow, 'place' | 'location'>[]): SpuriousAttribute | null {
  if (rows.some((r) => r.place !== null && r.place !== undefined)) return 'place';
  if (rows.some((r) => r.location !== null && r.location !== undefined)) return 'location';
  return null;
}

interface SplitIndex {
  byLabel: Map<number, SourceRow[]>;
  labels: number[];
  all: SourceRow[];
  /** attribute value → rows with another value, built on first use */
  otherAttr: Map<string, SourceRow[]>;
}

/** Seeded donor candidates for the donor variants of the stress test. */
export class StressPairing {
  private splits = new Map<string, SplitIndex>();

  /**
   * @param rows the stress test's base rows (every split); their order is the source manifest's, which fixes draws
   * @param numClasses K, for (y + 1) mod K
   * @param attribute the spurious attribute for `attr_flip` (null: the dataset has none)
   */
  constructor(rows: readonly SourceRow[], readonly numClasses: number, readonly attribute: SpuriousAttribute | null) {
    for (const r of rows) {
      let s = this.splits.get(r.split);
      if (!s) this.splits.set(r.split, (s = { byLabel: new Map(), labels: [], all: [], otherAttr: new Map() }));
      s.all.push(r);
      let l = s.byLabel.get(r.label);
      if (!l) s.byLabel.set(r.label, (l = []));
      l.push(r);
    }
    for (const s of this.splits.values()) s.labels = [...s.byLabel.keys()].sort((a, b) => a - b);
  }

  /** The pools a donor of `variant` is drawn from (one pool per class for mixed_rand), and why there is none. */
  pools(row: SourceRow, variant: DonorVariant): { pools: SourceRow[][]; none: string } {
    const s = this.splits.get(row.split);
    const where = `in split "${row.split}"`;
    if (!s) return { pools: [], none: `no usable image ${where}` };
    switch (variant) {
      case 'mixed_same':
        return { pools: [s.byLabel.get(row.label) ?? []], none: `no other image of class ${row.label} ${where}` };
      case 'mixed_rand':
        return { pools: s.labels.filter((l) => l !== row.label).map((l) => s.byLabel.get(l)!), none: `no image of another class ${where}` };
      case 'mixed_next': {
        const next = (row.label + 1) % this.numClasses;
        return { pools: [s.byLabel.get(next) ?? []], none: `no image of class ${next} (= (y + 1) mod ${this.numClasses}) ${where}` };
      }
      case 'attr_flip': {
        const own = attributeOf(row, this.attribute);
        if (own === null) return { pools: [], none: this.attribute ? `the image has no ${this.attribute}` : 'the dataset has no spurious attribute' };
        let other = s.otherAttr.get(own);
        if (!other) s.otherAttr.set(own, (other = s.all.filter((r) => { const a = attributeOf(r, this.attribute); return a !== null && a !== own; })));
        return { pools: [other], none: `no image with another ${this.attribute} than ${own} ${where}` };
      }
    }
  }

  /** Up to n distinct donor candidates for `row`, in seeded order; never the row itself. */
  candidates(row: SourceRow, variant: DonorVariant, seed: number, n: number): SourceRow[] {
    const { pools } = this.pools(row, variant);
    return drawDistinct(pools, n, rngFor(seed, row.id, 'stress-test', variant, 'donors'), row.id);
  }
}

/**
 * n distinct rows: each draw picks a pool uniformly among those with rows left, then a row of it uniformly.
 * `exclude` (the recipient) is never drawn.
 */
export function drawDistinct(pools: readonly SourceRow[][], n: number, rng: Rng, exclude: string): SourceRow[] {
  const live = pools.map((rows) => {
    const taken = new Set<number>();
    const self = rows.findIndex((r) => r.id === exclude);
    if (self >= 0) taken.add(self);
    return { rows, taken };
  });
  const out: SourceRow[] = [];
  while (out.length < n) {
    const open = live.filter((l) => l.taken.size < l.rows.length);
    if (!open.length) break;
    const l = open[rng.int(open.length)];
    let k: number;
    if (l.taken.size * 2 < l.rows.length) {
      do k = rng.int(l.rows.length); while (l.taken.has(k));
    } else {
      // mostly taken: draw among what is left, so the loop never spins on a nearly empty pool
      const free: number[] = [];
      for (let i = 0; i < l.rows.length; i++) if (!l.taken.has(i)) free.push(i);
      k = free[rng.int(free.length)];
    }
    l.taken.add(k);
    out.push(l.rows[k]);
  }
  return out;
}
