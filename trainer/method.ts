import { UserError } from '../manifests/errors.ts';

/**
 * The METHOD spec: what a training run adds to the original images (DESIGN §2–5).
 *
 *   METHOD  := TERM ( '+' TERM )*
 *   TERM    := NAME ( '@' NUMBER )?
 *
 * Originals always train (every method in the paper is "originals + something"); `orig` alone is the baseline.
 */

/**
 * The objective on counterfactual images (--cf-loss; losses.ts): `logp` is -log(1 - p(y)), the paper's choice;
 * `uniform` is KL(U || p); `uniform-except-y` is -mean over k != y of log p_k.
 */
export type CfLossKind = 'logp' | 'uniform' | 'uniform-except-y';
/** Every CfLossKind, in the order --cf-loss lists them (parseCfLoss accepts exactly these). */
export const CF_LOSS_KINDS: readonly CfLossKind[] = ['logp', 'uniform', 'uniform-except-y'];

/** A generated corpus the run reads from disk: `corpora/<dataset>/<folder>/manifest/`. */
export interface CorpusTerm {
  kind: 'cf' | 'f';
  /** infill name as the generator spells it: tile, random, cagan, mixed-rand, ... */
  infill: string;
  /** corpus folder name, `cf-<infill>` or `f-<infill>` */
  folder: string;
}

/**
 * A parsed METHOD (parseMethod): the generated corpora it reads and the online terms it adds to the originals,
 * each null when absent, with the defaults of METHOD_DEFAULTS filled in.
 */
export interface MethodSpec {
  /** the spec in canonical form: fixed term order, every default written out */
  canonical: string;
  cf: CorpusTerm[];
  f: CorpusTerm[];
  /** online FGSM on the background (DESIGN §3); epsilon in [-1,1] input units */
  fgsm: { epsilon: number } | null;
  /** saliency penalty weight λ (DESIGN §4) */
  sal: { lambda: number } | null;
  /** mixup on the originals, Beta(α, α) */
  mixup: { alpha: number } | null;
  /** label smoothing ε on the originals' cross-entropy */
  ls: { epsilon: number } | null;
  /** corpus folders the run needs, in spec order */
  corpora: string[];
}

/** Defaults for the online terms, and where they come from. */
export const METHOD_DEFAULTS = {
  /** the authors' code default; the paper sweeps 0.15 … 0.9 */
  fgsm: 0.6,
  /** the middle of the paper's sweep 1e-4 … 1e3 on a log scale */
  sal: 1,
  /** the middle of the paper's sweep {0.1, 0.2, 0.3} */
  mixup: 0.2,
  /** the middle of the paper's sweep {0.05, 0.1, 0.2} */
  ls: 0.1,
} as const;

/** The METHOD grammar as help text: every term, its value and default, and examples (appended to parse errors). */
export const METHOD_GRAMMAR = [
  'METHOD is terms joined with "+", each with an optional "@value":',
  '  orig            the original images only (always included; the baseline on its own)',
  '  cf-<infill>     counterfactuals from the corpus folder cf-<infill> (grey, random, shuffle, tile, cagan, ...),',
  '                  trained with the --cf-loss objective',
  '  f-<infill>      factuals from the corpus folder f-<infill> (random, shuffle, mixed-rand, ...), cross-entropy with y',
  `  f-fgsm[@eps]    online FGSM on the background, eps in [-1,1] input units (default ${METHOD_DEFAULTS.fgsm}, the authors' code; the paper sweeps 0.15-0.9)`,
  `  sal[@lambda]    saliency penalty on the background, GradMask form (default ${METHOD_DEFAULTS.sal}; the paper sweeps 1e-4 to 1e3)`,
  `  mixup[@alpha]   mixup of the originals, Beta(alpha, alpha) (default ${METHOD_DEFAULTS.mixup})`,
  `  ls[@eps]        label smoothing of the originals' cross-entropy (default ${METHOD_DEFAULTS.ls})`,
  'examples: orig   cf-tile+f-random+sal   f-shuffle+sal@10   cf-cagan+f-fgsm@0.3   mixup@0.3',
].join('\n');

const INFILL_NAME = /^[a-z0-9]+(?:-[a-z0-9]+)*$/;

function fail(spec: string, why: string): never {
  throw new UserError(`bad METHOD "${spec}": ${why}\n${METHOD_GRAMMAR}`);
}

function parseValue(spec: string, term: string, raw: string, check: (v: number) => boolean, range: string): number {
  // A signed number is still a number: "@-1" is out of range, not "not a number".
  if (!/^[+-]?(\d+\.?\d*|\.\d+)(e[+-]?\d+)?$/i.test(raw)) fail(spec, `"${term}": "@${raw}" is not a number (allowed: ${range})`);
  const v = Number(raw);
  if (!Number.isFinite(v) || !check(v)) fail(spec, `"${term}": value ${raw} is out of range (${range})`);
  return v;
}

/** Parse a METHOD spec; throws a UserError that lists the grammar on anything it does not know. */
export function parseMethod(spec: string): MethodSpec {
  const text = spec.trim();
  if (!text) fail(spec, 'it is empty');
  const out: MethodSpec = { canonical: '', cf: [], f: [], fgsm: null, sal: null, mixup: null, ls: null, corpora: [] };
  const seen = new Set<string>();
  for (const rawTerm of text.split('+')) {
    const term = rawTerm.trim().toLowerCase();
    if (!term) fail(spec, 'an empty term (two "+" in a row, or a "+" at an end)');
    const at = term.indexOf('@');
    const name = at < 0 ? term : term.slice(0, at);
    const value = at < 0 ? null : term.slice(at + 1);
    if (seen.has(name)) fail(spec, `"${name}" appears twice`);
    seen.add(name);
    const noValue = (): void => { if (value !== null) fail(spec, `"${name}" takes no "@value"`); };
    if (name === 'orig') { noValue(); continue; }
    if (name === 'f-fgsm') {
      out.fgsm = { epsilon: value === null ? METHOD_DEFAULTS.fgsm : parseValue(spec, term, value, (v) => v > 0 && v <= 2, '0 < eps <= 2') };
      continue;
    }
    if (name === 'sal') {
      out.sal = { lambda: value === null ? METHOD_DEFAULTS.sal : parseValue(spec, term, value, (v) => v > 0, 'lambda > 0') };
      continue;
    }
    if (name === 'mixup') {
      out.mixup = { alpha: value === null ? METHOD_DEFAULTS.mixup : parseValue(spec, term, value, (v) => v > 0, 'alpha > 0') };
      continue;
    }
    if (name === 'ls') {
      out.ls = { epsilon: value === null ? METHOD_DEFAULTS.ls : parseValue(spec, term, value, (v) => v > 0 && v < 1, '0 < eps < 1') };
      continue;
    }
    const m = /^(cf|f)-(.+)$/.exec(name);
    if (m) {
      noValue();
      const [, kind, infill] = m;
      if (!INFILL_NAME.test(infill)) fail(spec, `"${name}": infill names are lower-case letters, digits and single dashes`);
      const t: CorpusTerm = { kind: kind as 'cf' | 'f', infill, folder: `${kind}-${infill}` };
      (kind === 'cf' ? out.cf : out.f).push(t);
      out.corpora.push(t.folder);
      continue;
    }
    fail(spec, `unknown term "${name}"`);
  }
  const parts = ['orig', ...out.cf.map((t) => t.folder), ...out.f.map((t) => t.folder)];
  if (out.fgsm) parts.push(`f-fgsm@${out.fgsm.epsilon}`);
  if (out.sal) parts.push(`sal@${out.sal.lambda}`);
  if (out.mixup) parts.push(`mixup@${out.mixup.alpha}`);
  if (out.ls) parts.push(`ls@${out.ls.epsilon}`);
  out.canonical = parts.join('+');
  return out;
}

/** Parse a --cf-loss value; throws a UserError that lists CF_LOSS_KINDS and what each means on anything else. */
export function parseCfLoss(raw: string): CfLossKind {
  if ((CF_LOSS_KINDS as readonly string[]).includes(raw)) return raw as CfLossKind;
  throw new UserError(`unknown --cf-loss "${raw}"`, {
    fix: `use one of ${CF_LOSS_KINDS.join(', ')} (logp: -log(1 - p(y)), the paper's choice; uniform: KL(U || p); uniform-except-y: -mean over k != y of log p_k)`,
  });
}

/** Whether the run needs per-pixel object masks on the originals (saliency penalty, FGSM on the background). */
export function needsMasks(m: MethodSpec): boolean {
  return m.sal !== null || m.fgsm !== null;
}

/** A file-name-safe form of the spec, for default run ids: `cf-tile+f-random+sal@1` → `cf-tile_f-random_sal1`. */
export function methodSlug(m: MethodSpec): string {
  return m.canonical
    .split('+')
    .filter((t, i, all) => !(t === 'orig' && all.length > 1))
    .join('_')
    .replace(/@/g, '')
    .replace(/[^a-z0-9._-]/g, '');
}

/**
 * The corpus folders `cfgen generate` can make without a plugin, so that a misspelt term (cf-tilee) fails before
 * a run starts rather than after a generator child process does. A copy of the generator's registry names
 * (pipeline/infills/index.ts, and cf-cagan from pipeline/inpaint/infill.ts) because the trainer may not import
 * pipeline/; a corpus of any other name is fine once it is on disk (plugin infills).
 */
export const BUILTIN_CORPORA: readonly string[] = [
  'cf-grey', 'cf-random', 'cf-shuffle', 'cf-tile', 'cf-tile-strip', 'cf-cagan', 'f-random', 'f-shuffle', 'f-mixed-rand',
];

/** The built-in corpus name nearest to `folder` (edit distance ≤ 2), for a "did you mean" hint; null if none. */
export function nearestCorpus(folder: string): string | null {
  const dist = (a: string, b: string): number => {
    let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
    for (let i = 1; i <= a.length; i++) {
      const cur = [i];
      for (let j = 1; j <= b.length; j++) cur[j] = Math.min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (a[i - 1] === b[j - 1] ? 0 : 1));
      prev = cur;
    }
    return prev[b.length];
  };
  let best: string | null = null, bestD = 3;
  for (const c of BUILTIN_CORPORA) {
    const d = dist(folder, c);
    if (d < bestD) { best = c; bestD = d; }
  }
  return best;
}
