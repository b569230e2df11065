import { describe, it, expect } from 'vitest';
import type { EvalRow } from '../manifests/schema.ts';
import { mainStressSplit, stressHeadline, stressScores, stressTableRows } from '../trainer/stress-metrics.ts';
import { provenanceLines, trainedOn } from '../pipeline/inpaint/provenance.ts';
import type { ModelCard } from '../common/model-card.ts';

/**
 * `eval --stress` scores against hand-computed numbers: accuracy per variant, BG-gap = acc(mixed_same) −
 * acc(mixed_rand), the next-class shift = mean p(y+1) on mixed_next − on original over the same source images, and
 * worst-group over (y, place of the background shown).
 */

function r(source: string, variant: string, label: number, place: number | null, split = 'test'): EvalRow {
  return {
    id: `${source}/${variant}`, source_id: source, source_path: `${source}.png`, image_path: `images/${variant}/${source}.png`, split, label,
    class_name: `c${label}`, variant, donor_id: variant.startsWith('mixed') ? 'd' : null, donor_label: null, place, location: null, seed: 0,
    mask_kind: 'seg', sha256: 'x', width: 8, height: 8, status: 'ok', error: null,
  };
}

// K = 2; logits chosen so softmax is easy: [a, 0] gives p1 = 1 / (1 + e^a)
const p1 = (a: number) => 1 / (1 + Math.exp(a));

describe('stress-test scores', () => {
  const rows: EvalRow[] = [
    r('a', 'original', 0, 0), r('b', 'original', 1, 1), r('c', 'original', 0, 0),
    r('a', 'mixed_same', 0, 0), r('b', 'mixed_same', 1, 1), r('c', 'mixed_same', 0, 0),
    r('a', 'mixed_rand', 0, 1), r('b', 'mixed_rand', 1, 0), r('c', 'mixed_rand', 0, 1),
    r('a', 'mixed_next', 0, 1), r('b', 'mixed_next', 1, 0), r('c', 'mixed_next', 0, 1),
    r('a', 'only_fg', 0, null),
    r('z', 'original', 1, 0, 'other'),
  ];
  // per row: [logit0, logit1]
  const L: number[][] = [
    [2, 0], [0, 1], [1, 0], // original: all right
    [2, 0], [0, 1], [-1, 0], // mixed_same: c wrong
    [0, 1], [1, 0], [1, 0], // mixed_rand: a, b wrong
    [0, 0], [0, 3], [-1, 0], // mixed_next: a tie → class 0 (right), b right, c wrong
    [1, 0],
    [0, 5],
  ];
  const logits = Float32Array.from(L.flat());
  const s = stressScores(rows, logits, 2);

  it('accuracy per split and variant', () => {
    expect(Object.keys(s)).toEqual(['test', 'other']);
    expect(s.test.variants.original).toMatchObject({ n: 3, acc: 1 });
    expect(s.test.variants.mixed_same.acc).toBeCloseTo(2 / 3, 12);
    expect(s.test.variants.mixed_rand.acc).toBeCloseTo(1 / 3, 12);
    expect(s.test.variants.mixed_next.acc).toBeCloseTo(2 / 3, 12);
    expect(s.test.variants.only_fg).toMatchObject({ n: 1, acc: 1 });
    expect(s.other.variants.original).toMatchObject({ n: 1, acc: 1 });
  });

  it('BG-gap is mixed_same − mixed_rand', () => {
    expect(s.test.bgGap).toBeCloseTo(2 / 3 - 1 / 3, 12);
    expect(s.other.bgGap).toBeNull();
  });

  it('next-class shift: mean p(y+1) on mixed_next − on original, paired by source image', () => {
    // y+1 mod 2: a → 1, b → 0, c → 1
    const orig = [p1(2), 1 - p1(-1), p1(1)];
    const next = [p1(0), 1 - p1(-3), p1(-1)];
    const mean = (v: number[]) => v.reduce((x, y) => x + y, 0) / v.length;
    const sh = s.test.nextClassShift!;
    expect(sh.n).toBe(3);
    expect(sh.unpaired).toBe(0);
    expect(sh.meanOriginal).toBeCloseTo(mean(orig), 6);
    expect(sh.meanMixedNext).toBeCloseTo(mean(next), 6);
    expect(sh.shift).toBeCloseTo(mean(next) - mean(orig), 6);
  });

  it('worst-group over (y, place of the background shown); none where the background is gone', () => {
    // mixed_rand groups: y=0,place=1 (a wrong, c right) 0.5; y=1,place=0 (b wrong) 0
    expect(s.test.variants.mixed_rand.worstGroup).toBe(0);
    expect(s.test.variants.mixed_rand.groups).toEqual({ 'y=0,place=1': { n: 2, acc: 0.5 }, 'y=1,place=0': { n: 1, acc: 0 } });
    expect(s.test.variants.only_fg.worstGroup).toBeUndefined();
  });

  it('headline: the main split (test), prefixed so it never collides with IN-9\'s own keys', () => {
    expect(mainStressSplit(s)).toBe('test');
    const h = stressHeadline(s);
    expect(h['stress original']).toBe(1);
    expect(h['stress BG-gap']).toBeCloseTo(1 / 3, 12);
    expect(h['stress next-class shift']).toBeCloseTo(s.test.nextClassShift!.shift, 12);
    expect(h['stress worst-group']).toBe(0);
    expect(Object.keys(h).every((k) => k.startsWith('stress '))).toBe(true);
    expect(stressTableRows({ corpus: 'x', corpusId: 'y', size: 8, splits: s, headline: h }).map(([a]) => a)).toContain('stress test BG-gap (mixed_same − mixed_rand)');
  });

  it('AUC per variant when asked (CCT), and a length mismatch is an error', () => {
    const withAuc = stressScores(rows, logits, 2, { withAuc: true });
    expect(withAuc.test.variants.original.auc).toBe(1);
    expect(() => stressScores(rows, logits.subarray(2), 2)).toThrow(/logits/);
  });
});

describe('cf-cagan provenance', () => {
  const card = { name: 'cagan', provenance: 'cfgen make inpainter: trained on synth-waterbirds (train split, 1200 images), steps=250' } as ModelCard;

  it('reads the training dataset from the provenance', () => {
    expect(trainedOn(card.provenance)).toBe('synth-waterbirds');
    expect(trainedOn('DeepFill v1 (Yu et al. 2018) release_imagenet_256')).toBeNull();
    expect(trainedOn('weights trained on the Places2 dataset.')).toBe('Places2');
  });

  it('prints which model, and warns when it was trained on another dataset', () => {
    const same = provenanceLines(card, 'models/cagan.card.json', 'synth-waterbirds');
    expect(same.info).toMatch(/model "cagan" \(models\/cagan.card.json\); provenance: cfgen make inpainter: trained on synth-waterbirds/);
    expect(same.warning).toBeNull();
    expect(provenanceLines(card, 'c', 'waterbirds').warning).toMatch(/trained on synth-waterbirds, not on waterbirds.*make inpainter DATASET=waterbirds/);
    expect(provenanceLines({ ...card, provenance: 'DeepFill v1' }, 'c', 'in9').warning).toMatch(/does not say which dataset/);
  });
});
