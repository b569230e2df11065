import { describe, it, expect } from 'vitest';
import { rngFor, type SourceRow } from '../manifests/index.ts';
import { StressPairing, attributeOf, detectAttribute, drawDistinct } from '../pipeline/stress/pairing.ts';
import { DONOR_VARIANTS } from '../pipeline/stress/variants.ts';

/**
 * Who gives a background to whom: deterministic in (seed, image, variant), never the image itself, mixed_same from
 * the same class, mixed_rand from another class (class first, uniformly), mixed_next from class (y + 1) mod K,
 * attr_flip from the other value of the spurious attribute, and always the same split.
 */

function row(i: number, label: number, split = 'test', place: number | null = i % 2, location: string | null = null): SourceRow {
  return {
    id: `${split}/${i}`, split, label, class_name: `c${label}`, path: `${i}.png`, mask_path: `${i}.m.png`, mask_format: 'png-nonzero', boxes: null,
    group: null, place, location, variant: null, width: 8, height: 8, status: 'ok', error: null,
  };
}

const K = 4;
// unbalanced on purpose: class 0 has 40 images, class 3 only 2
const counts = [40, 10, 5, 2];
const rows: SourceRow[] = [];
for (let l = 0, i = 0; l < K; l++) for (let k = 0; k < counts[l]; k++, i++) rows.push(row(i, l));
rows.push(row(1000, 0, 'val'), row(1001, 1, 'val'));

describe('stress-test donor pairing', () => {
  const pairing = new StressPairing(rows, K, 'place');

  it('is deterministic, and another seed draws other donors', () => {
    for (const v of DONOR_VARIANTS) {
      const a = rows.map((r) => pairing.candidates(r, v, 3, 8).map((d) => d.id).join(','));
      const b = new StressPairing(rows, K, 'place');
      expect(rows.map((r) => b.candidates(r, v, 3, 8).map((d) => d.id).join(','))).toEqual(a);
      const c = rows.map((r) => pairing.candidates(r, v, 4, 8).map((d) => d.id).join(','));
      expect(c).not.toEqual(a);
    }
  });

  it('never pairs an image with itself, and stays in its split', () => {
    for (const r of rows) for (const v of DONOR_VARIANTS) for (const seed of [0, 1, 2]) {
      const c = pairing.candidates(r, v, seed, 50);
      expect(c.map((d) => d.id)).not.toContain(r.id);
      expect(c.every((d) => d.split === r.split)).toBe(true);
      expect(new Set(c.map((d) => d.id)).size).toBe(c.length); // distinct
    }
  });

  it('mixed_same: class y; mixed_rand: another class; mixed_next: class (y + 1) mod K; attr_flip: the other place', () => {
    for (const r of rows.filter((x) => x.split === 'test')) {
      expect(pairing.candidates(r, 'mixed_same', 0, 8).every((d) => d.label === r.label)).toBe(true);
      expect(pairing.candidates(r, 'mixed_rand', 0, 8).every((d) => d.label !== r.label)).toBe(true);
      const next = pairing.candidates(r, 'mixed_next', 0, 8);
      expect(next.length).toBeGreaterThan(0);
      expect(next.every((d) => d.label === (r.label + 1) % K)).toBe(true);
      expect(pairing.candidates(r, 'attr_flip', 0, 8).every((d) => d.place !== r.place)).toBe(true);
    }
    // the wrap: class K − 1 takes class 0's backgrounds
    const last = rows.find((r) => r.label === K - 1)!;
    expect(new Set(pairing.candidates(last, 'mixed_next', 0, 8).map((d) => d.label))).toEqual(new Set([0]));
    // a pool with the image alone: mixed_same of a class of one has no donor (the val split has one image per class)
    expect(pairing.candidates(rows.find((r) => r.id === 'val/1000')!, 'mixed_same', 0, 8)).toEqual([]);
    expect(pairing.pools(rows.find((r) => r.id === 'val/1001')!, 'mixed_next').none).toMatch(/class 2/);
  });

  it('mixed_rand draws the class uniformly, not in proportion to its images', () => {
    const first = new Map<number, number>();
    const r0 = rows.find((r) => r.label === 1)!;
    for (let seed = 0; seed < 600; seed++) {
      const d = pairing.candidates(r0, 'mixed_rand', seed, 1)[0];
      first.set(d.label, (first.get(d.label) ?? 0) + 1);
    }
    // classes 0, 2, 3 hold 40, 5 and 2 images: uniform over classes gives ~200 each, by images class 0 would get ~510
    for (const l of [0, 2, 3]) expect(first.get(l)!).toBeGreaterThan(140);
    expect(first.has(1)).toBe(false);
  });

  it('attributes: place first, then location; rows without one have no attr_flip donor', () => {
    expect(detectAttribute([row(0, 0)])).toBe('place');
    expect(detectAttribute([row(0, 0, 'test', null, 'L7')])).toBe('location');
    expect(detectAttribute([row(0, 0, 'test', null)])).toBe(null);
    expect(attributeOf(row(0, 0, 'test', 1), 'place')).toBe('1');
    const cct = [0, 1, 2, 3, 4, 5].map((i) => row(i, i % 2, 'cis_test', null, `L${i % 3}`));
    const p = new StressPairing(cct, 2, 'location');
    for (const r of cct) expect(p.candidates(r, 'attr_flip', 0, 8).every((d) => d.location !== r.location)).toBe(true);
    const none = new StressPairing(cct, 2, null);
    expect(none.pools(cct[0], 'attr_flip')).toEqual({ pools: [], none: 'the dataset has no spurious attribute' });
  });

  it('drawDistinct empties every pool without repeats, and terminates on tiny pools', () => {
    const pools = [[row(1, 0), row(2, 0)], [row(3, 1)]];
    const got = drawDistinct(pools, 10, rngFor('t'), 'test/2');
    expect(got.map((r) => r.id).sort()).toEqual(['test/1', 'test/3']);
  });
});
