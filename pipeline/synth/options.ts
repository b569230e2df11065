import { UserError } from '../../manifests/errors.ts';

/** Knobs of the offline synthetic datasets. Every output byte is a function of these. */
export interface SynthOptions {
  seed: number;
  /** image side in pixels (images are square) */
  size: number;
  /** images in the train split */
  train: number;
  /** images in the val split (CCT: cis_val) */
  val: number;
  /** images in the test split (IN-9: per variant; CCT: each of cis_test and trans_test) */
  test: number;
  /** train P(background matches the class): Waterbirds P(place == y); IN-9 P(bg family == class); CCT P(location in the class's home locations) */
  correlation: number;
  /** 0..1: how much the background families overlap in colour and how noisy they are (higher = harder shortcut) */
  difficulty: number;
  /** foreground side as a fraction of the image side (jittered ±15% per image) */
  fgScale: number;
}

export const SYNTH_DATASETS = ['synth-waterbirds', 'synth-in9', 'synth-cct'] as const;
export type SynthDataset = (typeof SYNTH_DATASETS)[number];

export const SYNTH_DEFAULTS: Record<SynthDataset, SynthOptions> = {
  'synth-waterbirds': { seed: 0, size: 64, train: 1200, val: 400, test: 800, correlation: 0.95, difficulty: 0.2, fgScale: 0.4 },
  'synth-in9': { seed: 0, size: 64, train: 1350, val: 270, test: 270, correlation: 0.9, difficulty: 0.2, fgScale: 0.45 },
  'synth-cct': { seed: 0, size: 64, train: 1200, val: 300, test: 300, correlation: 0.9, difficulty: 0.2, fgScale: 0.35 },
};

export function isSynthDataset(name: string): name is SynthDataset {
  return (SYNTH_DATASETS as readonly string[]).includes(name);
}

/** Defaults filled in and every knob range-checked (bad knobs are user errors, not NaN images). */
export function resolveSynthOptions(dataset: string, partial: Partial<SynthOptions> = {}): SynthOptions {
  if (!isSynthDataset(dataset)) throw new UserError(`unknown synthetic dataset "${dataset}"`, { fix: `use one of ${SYNTH_DATASETS.join(', ')}` });
  const o: SynthOptions = { ...SYNTH_DEFAULTS[dataset] };
  for (const [k, v] of Object.entries(partial)) if (v !== undefined) (o as unknown as Record<string, unknown>)[k] = v;
  const check = (ok: boolean, what: string) => {
    if (!ok) throw new UserError(`bad synthetic option: ${what}`, { fix: 'see `cfgen dataset --help` for the ranges' });
  };
  check(Number.isInteger(o.seed) && o.seed >= 0, `seed must be a non-negative integer (got ${o.seed})`);
  check(Number.isInteger(o.size) && o.size >= 16 && o.size <= 1024, `size must be an integer in [16, 1024] (got ${o.size})`);
  for (const k of ['train', 'val', 'test'] as const) check(Number.isInteger(o[k]) && o[k] >= 0, `${k} must be a non-negative integer (got ${o[k]})`);
  check(o.correlation >= 0 && o.correlation <= 1, `correlation must be in [0, 1] (got ${o.correlation})`);
  check(o.difficulty >= 0 && o.difficulty <= 1, `difficulty must be in [0, 1] (got ${o.difficulty})`);
  check(o.fgScale > 0.05 && o.fgScale <= 0.9, `fg-scale must be in (0.05, 0.9] (got ${o.fgScale})`);
  return o;
}
