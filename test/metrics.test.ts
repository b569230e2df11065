import { describe, it, expect } from 'vitest';
import {
  accuracy, argmaxRows, softmaxRows, groupAccuracy, waterbirdsAccuracy, averageRanks, rocAuc, macroOvrAuc,
  averagePrecision, pixelImportance, saliencyAupr, nextClassShift, meanStd, formatPct,
} from '../trainer/metrics.ts';

describe('accuracy and groups', () => {
  it('argmax takes the first of tied maxima, accuracy counts hits', () => {
    expect([...argmaxRows([1, 3, 2, 5, 5, 0, -1, -2, -0.5], 3)]).toEqual([1, 0, 2]);
    expect(accuracy([1, 0, 2, 2], [1, 1, 2, 0])).toBe(0.5);
    expect(accuracy([], [])).toBeNaN();
    expect(() => accuracy([1], [1, 2])).toThrow(/1 predictions for 2 labels/);
  });

  it('softmax rows sum to 1 and survive large logits', () => {
    const p = softmaxRows([0, Math.log(3), 1000, 1000], 2);
    expect(p[0]).toBeCloseTo(0.25, 12);
    expect(p[1]).toBeCloseTo(0.75, 12);
    expect(p[2]).toBeCloseTo(0.5, 12);
  });

  it('per-group accuracy and the worst group', () => {
    const g = groupAccuracy([0, 1, 1, 1, 0], [0, 1, 0, 1, 1], ['a', 'a', 'b', 'b', 'b']);
    expect(g.groups).toEqual({ a: { n: 2, acc: 1 }, b: { n: 3, acc: 1 / 3 } });
    expect(g.worst).toBeCloseTo(1 / 3, 12);
    expect(g.worstGroup).toBe('b');
  });

  it('Waterbirds Original (y == place), Flip (y != place) and worst group', () => {
    // i:     0  1  2  3  4  5  6  7
    const y = [0, 0, 1, 1, 0, 0, 1, 1];
    const place = [0, 0, 1, 1, 1, 1, 0, 0];
    const pred = [0, 0, 1, 0, 0, 1, 0, 0];
    // original (i 0-3): 3/4; flip (4-7): i4 right, i5 wrong, i6 wrong, i7 wrong → 1/4
    // groups: y0p0 2/2, y1p1 1/2, y0p1 1/2, y1p0 0/2 → worst 0
    const w = waterbirdsAccuracy(pred, y, place);
    expect(w.original).toBe(0.75);
    expect(w.flip).toBe(0.25);
    expect(w.overall).toBe(0.5);
    expect(w.worstGroup).toBe(0);
    expect(w.groups['y=1,place=0']).toEqual({ n: 2, acc: 0 });
    expect(w.groups['y=0,place=1']).toEqual({ n: 2, acc: 0.5 });
    expect(w.n).toEqual({ original: 4, flip: 4 });
  });
});

describe('ROC AUC', () => {
  it('average ranks split ties', () => {
    expect([...averageRanks([10, 20, 20, 5, 20])]).toEqual([2, 4, 4, 1, 4]);
  });

  it('matches hand-counted pairs, ties counting one half', () => {
    // positives 0.35, 0.8 vs negatives 0.1, 0.4: pairs won 1 + 0 + 1 + 1 = 3 of 4
    expect(rocAuc([0.1, 0.4, 0.35, 0.8], [0, 0, 1, 1])).toBe(0.75);
    // positives 0.5, 0.9 vs negatives 0.5, 0.2: 0.5 (tie) + 1 + 1 + 1 = 3.5 of 4
    expect(rocAuc([0.5, 0.5, 0.2, 0.9], [1, 0, 0, 1])).toBe(0.875);
    expect(rocAuc([1, 2], [1, 1])).toBeNaN();
  });

  it('macro one-vs-rest drops classes absent from the split', () => {
    // 4 images, 3 classes; class 2 has no image.
    const logits = [
      2, 0, 5, // y0
      1, 3, 0, // y0
      0, 2, 1, // y1
      0, 4, 9, // y1
    ];
    // class 0 scores [2,1,0,0], pos [1,1,0,0] → 1; class 1 scores [0,3,2,4], pos [0,0,1,1]: pairs 2>0,2<3,4>0,4>3 → 3/4
    const m = macroOvrAuc(logits, 3, [0, 0, 1, 1]);
    expect(m.perClass).toEqual({ 0: 1, 1: 0.75 });
    expect(m.dropped).toEqual([2]);
    expect(m.auc).toBe(0.875);
  });
});

describe('saliency average precision', () => {
  it('step-wise AP equals the hand computation (scikit-learn convention)', () => {
    // ranks: 0.8 (pos) P=1 R=.5; 0.4 (neg); 0.35 (pos) P=2/3 R=1 → .5 + .5·2/3
    expect(averagePrecision([0.1, 0.4, 0.35, 0.8], [0, 0, 1, 1])).toBeCloseTo(0.5 + 1 / 3, 12);
    // tied threshold 0.5 holds one pos and one neg: P=.5 at R=.5, then P=2/3 at R=1
    expect(averagePrecision([0.5, 0.5, 0.2], [1, 0, 1])).toBeCloseTo(0.25 + 1 / 3, 12);
    expect(averagePrecision([0.5, 0.5, 0.2], [0, 1, 1])).toBeCloseTo(0.25 + 1 / 3, 12);
    expect(averagePrecision([3, 2, 1], [1, 1, 0])).toBe(1);
    expect(averagePrecision([3, 2, 1], [0, 0, 0])).toBeNaN();
  });

  it('importance is the channel sum of squares', () => {
    expect([...pixelImportance([1, 2, 3, 0, -1, 0.5])]).toEqual([14, 1.25]);
  });

  it('averages per image and skips all-0 / all-1 masks', () => {
    const r = saliencyAupr([
      { importance: [0.1, 0.4, 0.35, 0.8], mask: [0, 0, 1, 1] }, // 5/6
      { importance: [3, 2, 1], mask: [1, 1, 0] }, // 1
      { importance: [1, 2], mask: [0, 0] }, // skipped
      { importance: [1, 2], mask: [1, 1] }, // skipped
    ]);
    expect(r.n).toBe(2);
    expect(r.skipped).toBe(2);
    expect(r.mean).toBeCloseTo((5 / 6 + 1) / 2, 12);
    expect(saliencyAupr([{ importance: [1], mask: [1] }]).mean).toBeNaN();
  });
});

describe('next-class probability shift', () => {
  it('pairs by file name and compares p((y+1) mod K)', () => {
    const k = 3;
    const original = {
      keys: ['0/a.jpg', '2/b.jpg', '1/c.jpg'],
      labels: [0, 2, 1],
      probs: [0.7, 0.2, 0.1, /* b: next of 2 is 0 */ 0.1, 0.1, 0.8, /* c: unpaired */ 0.3, 0.3, 0.4],
    };
    const mixedNext = {
      keys: ['2/b.jpg', '0/a.jpg', '0/z.jpg'],
      labels: [2, 0, 0],
      probs: [0.5, 0.1, 0.4, 0.4, 0.5, 0.1, 0.2, 0.2, 0.6],
    };
    // a: 0.2 → 0.5; b: 0.1 → 0.5. mean orig 0.15, mixed 0.5, shift 0.35
    const s = nextClassShift(original, mixedNext, k);
    expect(s.n).toBe(2);
    expect(s.unpaired).toBe(2);
    expect(s.meanOriginal).toBeCloseTo(0.15, 12);
    expect(s.meanMixedNext).toBeCloseTo(0.5, 12);
    expect(s.shift).toBeCloseTo(0.35, 12);
  });

  it('refuses pairs whose labels disagree', () => {
    expect(() => nextClassShift({ keys: ['x'], labels: [0], probs: [1, 0] }, { keys: ['x'], labels: [1], probs: [1, 0] }, 2)).toThrow(/label 0 in Original but 1/);
  });
});

describe('mean ± std over seeds', () => {
  it('uses the sample standard deviation and ignores NaN', () => {
    const m = meanStd([0.9, 0.8, 0.7, NaN]);
    expect(m.n).toBe(3);
    expect(m.mean).toBeCloseTo(0.8, 12);
    expect(m.std).toBeCloseTo(0.1, 12);
    expect(formatPct(m)).toBe('80.0 ± 10.0');
    expect(meanStd([0.5])).toEqual({ mean: 0.5, std: 0, n: 1 });
    expect(meanStd([]).n).toBe(0);
  });
});
