/**
 * The paper's reference numbers (DESIGN §8: Chang et al., CVPR 2021, BiT-S-R50x1, mean of 3 seeds, test accuracy %),
 * keyed by our eval.json headline columns and matched to our runs by their METHOD terms.
 */

/** One row of a paper table: its label, the METHOD terms it corresponds to, and its numbers (percent). */
export interface PaperRow {
  label: string;
  /** our METHOD terms without values and without `orig`, sorted: `cf-cagan+f-random+sal` */
  terms: string;
  values: Record<string, number>;
}

/** A dataset's reference table. */
export interface PaperTable {
  dataset: string;
  /** our column name → the paper's */
  columns: Record<string, string>;
  rows: PaperRow[];
}

/** DESIGN §8, restated. */
export const PAPER_TABLES: Record<string, PaperTable> = {
  waterbirds: {
    dataset: 'waterbirds',
    columns: { Original: 'Orig test', Flip: 'Flip test' },
    rows: [
      { label: 'Orig.', terms: '', values: { Original: 98.4, Flip: 76.1 } },
      { label: '+ Sal', terms: 'sal', values: { Original: 98.4, Flip: 77.6 } },
      { label: '+ CF(CAGAN)', terms: 'cf-cagan', values: { Original: 95.2, Flip: 85.6 } },
      { label: '+ F(Random)', terms: 'f-random', values: { Original: 98.4, Flip: 80.7 } },
      { label: '+ CF(CAGAN)+F(Random)+Sal', terms: 'cf-cagan+f-random+sal', values: { Original: 94.8, Flip: 90.6 } },
    ],
  },
  in9: {
    dataset: 'in9',
    columns: { Original: 'Original', 'Mixed-Same': 'Mixed-Same', 'Mixed-Rand': 'Mixed-Rand', 'Mixed-Next': 'Mixed-Next' },
    rows: [
      { label: 'Orig.', terms: '', values: { Original: 82.0, 'Mixed-Same': 71.0, 'Mixed-Rand': 51.5, 'Mixed-Next': 47.5 } },
      { label: '+ F(Shuffle)', terms: 'f-shuffle', values: { Original: 83.5, 'Mixed-Same': 73.8, 'Mixed-Rand': 57.1, 'Mixed-Next': 53.3 } },
      { label: '+ CF(CAGAN)+F(Shuffle)+Sal', terms: 'cf-cagan+f-shuffle+sal', values: { Original: 81.9, 'Mixed-Same': 72.5, 'Mixed-Rand': 58.0, 'Mixed-Next': 55.5 } },
    ],
  },
};

/** A METHOD's terms as the paper tables key them: values and `orig` dropped, sorted. `orig+cf-tile+sal@10` → `cf-tile+sal`. */
export function methodTerms(method: string): string {
  return method.split('+').map((t) => t.replace(/@.*$/, '')).filter((t) => t && t !== 'orig').sort().join('+');
}

/** The paper's table for a dataset (only the real Waterbirds and ImageNet-9), or null. */
export function paperTableFor(dataset: string): PaperTable | null {
  return PAPER_TABLES[dataset] ?? null;
}

/** The paper row a METHOD corresponds to on a dataset, or null. */
export function paperRowFor(dataset: string, method: string): PaperRow | null {
  return paperTableFor(dataset)?.rows.find((r) => r.terms === methodTerms(method)) ?? null;
}

/** One sentence on whether and where the paper gives reference numbers for this dataset. */
export function referenceNote(dataset: string): string {
  if (paperTableFor(dataset)) {
    return `Paper reference (DESIGN §8: BiT-S-R50x1 at 224 px, mean of 3 seeds) shown as "(paper x)" beside the matching METHOD; the paper reports no std.`;
  }
  if (dataset.startsWith('synth-')) {
    return `No paper reference: ${dataset} is this toolkit's offline synthetic dataset, trained with the CPU preset (small model, 32 px); `
      + `the paper's numbers (DESIGN §8) are for the real Waterbirds and ImageNet-9 and are not comparable.`;
  }
  return `No paper reference: DESIGN §8 restates the paper's numbers for waterbirds and in9 only, not for ${dataset}.`;
}
