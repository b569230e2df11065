import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join, relative } from 'node:path';
import { PROJECT_ROOT } from '../common/paths.ts';
import { UserError } from '../manifests/errors.ts';
import { CORPUS_INFO_FILE, openCorpus } from '../manifests/reader.ts';
import type { EvalRow, SourceRow } from '../manifests/schema.ts';
import { predictLogits } from './evaluate.ts';
import type { Model } from './model.ts';
import { stressHeadline, stressScores, type StressReport } from './stress-metrics.ts';
import { datasetSlug } from '../common/paths.ts';

/**
 * `cfgen eval --stress`: a run scored on every variant of its dataset's stress-test corpus (built by the pipeline's
 * `stress-test` command, read here through manifests/ only). A missing corpus is built by running that command, as
 * `train` does for missing training corpora: the trainer never imports the pipeline.
 */

/** The stress corpus's folder under `<corpora>/<dataset>/` (the pipeline's STRESS_FOLDER; the name is the contract). */
export const STRESS_CORPUS = 'stress-test';

/** A finished stress corpus: its ok rows, in manifest order. */
export interface StressCorpus {
  dir: string;
  corpusId: string;
  classNames: string[];
  rows: EvalRow[];
}

/**
 * Read `<corpora>/<dataset>/stress-test/`; null when it is missing or unfinished (no corpus.json: building it again
 * resumes it). A finished one is opened through openCorpus, so a damaged or mixed stress corpus is refused, never
 * scored.
 */
export async function readStressCorpus(corporaRoot: string, dataset: string): Promise<StressCorpus | null> {
  const dir = join(corporaRoot, datasetSlug(dataset), STRESS_CORPUS);
  if (!existsSync(join(dir, CORPUS_INFO_FILE))) return null;
  const m = await openCorpus<EvalRow>(dir, { kind: 'eval' });
  if (m.metadata.kind !== 'eval') throw new UserError(`expected an eval manifest, found a ${m.metadata.kind} manifest`, { file: m.shards[0], fix: `rebuild it: make stress-test DATASET=${dataset}` });
  const rows: EvalRow[] = [];
  for await (const r of m.rows()) if (r.status === 'ok' && r.image_path) rows.push(r);
  return { dir, corpusId: m.info.corpus_id, classNames: m.metadata.class_names, rows };
}

/** Build the stress corpus with the pipeline's CLI (a child process); its progress goes to this stderr. */
async function buildStressCorpus(corporaRoot: string, dataset: string, log: (l: string) => void): Promise<void> {
  const fix = `run \`make stress-test DATASET=${dataset}\` (or npx tsx cfgen.ts stress-test --dataset ${dataset} --corpora-root ${corporaRoot})`;
  if (!existsSync(join(PROJECT_ROOT, 'cfgen.ts'))) throw new UserError(`no stress-test corpus for "${dataset}"`, { file: join(corporaRoot, datasetSlug(dataset), STRESS_CORPUS), fix });
  const src = join(corporaRoot, datasetSlug(dataset), 'source');
  const args = existsSync(src)
    ? ['tsx', 'cfgen.ts', 'stress-test', '--source', src, '--grid-rows', '0']
    : ['tsx', 'cfgen.ts', 'stress-test', '--dataset', dataset, '--corpora-root', corporaRoot, '--grid-rows', '0'];
  log(`no stress-test corpus for ${dataset}: building it with npx ${args.join(' ')} (its progress follows)`);
  const code = await new Promise<number>((res, rej) => {
    const child = spawn('npx', args, { cwd: PROJECT_ROOT, stdio: ['ignore', 'inherit', 'inherit'] });
    child.on('error', rej);
    child.on('exit', (c) => res(c ?? 1));
  });
  if (code !== 0) throw new UserError(`building the stress-test corpus failed (exit ${code})`, { file: join(corporaRoot, datasetSlug(dataset), STRESS_CORPUS), fix });
}

/** An eval row as the eval stream reads it: the image path relative to the corpus folder. */
function asSourceRow(r: EvalRow): SourceRow {
  return {
    id: r.id, split: r.split, label: r.label, class_name: r.class_name, path: r.image_path!, mask_path: null, mask_format: null,
    boxes: null, group: null, place: r.place, location: r.location, variant: r.variant, width: r.width, height: r.height, status: 'ok', error: null,
  };
}

/**
 * Score `model` on the dataset's stress corpus (built first when missing). `adapter` decides the extra metric:
 * CCT also gets macro AUC per variant.
 */
export async function evaluateStress(
  model: Model,
  o: { corporaRoot: string; dataset: string; adapter: string; size: number; batchSize: number; concurrency?: number; build?: boolean; log?: (l: string) => void },
): Promise<StressReport> {
  const log = o.log ?? (() => undefined);
  let corpus = await readStressCorpus(o.corporaRoot, o.dataset);
  if (!corpus && o.build !== false) {
    await buildStressCorpus(o.corporaRoot, o.dataset, log);
    corpus = await readStressCorpus(o.corporaRoot, o.dataset);
  }
  if (!corpus) {
    throw new UserError(`no finished stress-test corpus for "${o.dataset}"`, { file: join(o.corporaRoot, o.dataset, STRESS_CORPUS), fix: `run \`make stress-test DATASET=${o.dataset}\`` });
  }
  const k = model.config.numClasses;
  if (corpus.classNames.length !== k) {
    throw new UserError(`the stress corpus has ${corpus.classNames.length} classes, the model ${k}`, { file: corpus.dir, fix: `rebuild it: npx tsx cfgen.ts stress-test --dataset ${o.dataset} --force` });
  }
  const t0 = Date.now();
  log(`stress test: ${corpus.rows.length} images in ${new Set(corpus.rows.map((r) => r.variant)).size} variants`);
  // one pass per variant, so a long evaluation reports its progress variant by variant
  const logits = new Float32Array(corpus.rows.length * k);
  for (const v of [...new Set(corpus.rows.map((r) => r.variant))]) {
    const idx = corpus.rows.flatMap((r, i) => (r.variant === v ? [i] : []));
    const part = await predictLogits(model, corpus.dir, idx.map((i) => asSourceRow(corpus!.rows[i])), { size: o.size, batchSize: o.batchSize, concurrency: o.concurrency });
    idx.forEach((i, j) => logits.set(part.subarray(j * k, (j + 1) * k), i * k));
    log(`stress test ${v}: ${idx.length} images (${((Date.now() - t0) / 1000).toFixed(1)} s)`);
  }
  const splits = stressScores(corpus.rows, logits, k, { withAuc: o.adapter === 'cct' });
  log(`stress test: scored in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
  return { corpus: relative(o.corporaRoot, corpus.dir), corpusId: corpus.corpusId, size: o.size, splits, headline: stressHeadline(splits) };
}
