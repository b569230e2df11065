import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { writeFileAtomic } from '../manifests/io.ts';
import { formatPct, meanStd, type MeanStd } from '../trainer/metrics.ts';
import { bestCheckpoint } from '../trainer/run-resume.ts';

/**
 * The tables and checks of bench/pretrain-demo.ts: one run's result, the .npz-vs-.safetensors identity check, the
 * Markdown section (stdout, results.md and docs/benchmarks.md between the markers below).
 */

/** docs/benchmarks.md holds the demonstration's latest section between these markers. */
export const DOCS_BEGIN = '<!-- pretrain-demo:begin (written by bench/pretrain-demo.ts) -->';
export const DOCS_END = '<!-- pretrain-demo:end -->';

/** What the table needs of one finished run. */
export interface RunResult { runId: string; headline: Record<string, number>; bestEpoch: number | null; trainSeconds: number }

/** A table row: a METHOD trained from scratch or fine-tuned from the pretrained .npz, over the seeds that finished. */
export interface DemoRow { method: string; init: 'scratch' | 'npz'; runs: RunResult[] }

/** The outcome of comparing the .npz and .safetensors fine-tuning runs of one seed. */
export interface IdentityCheck { method: string; identical: boolean; detail: string }

/** A finished run's test headline and training time, or null when it has no eval.json. */
export async function readRunResult(runDir: string): Promise<RunResult | null> {
  try {
    const ev = JSON.parse(await readFile(join(runDir, 'eval.json'), 'utf8')) as { headline: Record<string, number>; bestEpoch: number | null };
    const epochs = (await readFile(join(runDir, 'metrics.jsonl'), 'utf8')).split('\n').filter(Boolean).map((l) => JSON.parse(l) as { seconds?: { train?: number; val?: number } });
    const trainSeconds = epochs.reduce((a, e) => a + (e.seconds?.train ?? 0) + (e.seconds?.val ?? 0), 0);
    return { runId: basename(runDir), headline: ev.headline, bestEpoch: ev.bestEpoch, trainSeconds };
  } catch {
    return null;
  }
}

// what differs between two identical runs: when and how fast they ran
const TIMING_KEYS = new Set(['time', 'seconds', 'images_per_s', 'compute_images_per_s']);
const withoutTiming = (line: string): string => JSON.stringify(JSON.parse(line, (k, v) => (TIMING_KEYS.has(k) ? undefined : v)));

/**
 * Whether two runs are the same computation: the best checkpoints' weight digests, every epoch's losses, gradient
 * norms and validation metrics (metrics.jsonl without its timings), the model configs and the test headline.
 */
export async function compareRuns(a: string, b: string, method: string): Promise<IdentityCheck> {
  if (!existsSync(join(a, 'eval.json')) || !existsSync(join(b, 'eval.json'))) {
    return { method, identical: false, detail: `not compared: ${basename(a)} or ${basename(b)} did not finish` };
  }
  const read = async (d: string): Promise<{ sha: string; epochs: string[]; model: string; headline: string }> => {
    const { bestDir } = await bestCheckpoint(d);
    const mj = JSON.parse(await readFile(join(bestDir, 'model.json'), 'utf8')) as { weightsSha256: string; config: unknown };
    const epochs = (await readFile(join(d, 'metrics.jsonl'), 'utf8')).split('\n').filter(Boolean).map(withoutTiming);
    const ev = JSON.parse(await readFile(join(d, 'eval.json'), 'utf8')) as { headline: unknown };
    return { sha: mj.weightsSha256, epochs, model: JSON.stringify(mj.config), headline: JSON.stringify(ev.headline) };
  };
  const [x, y] = await Promise.all([read(a), read(b)]);
  const sameEpochs = x.epochs.length === y.epochs.length && x.epochs.every((l, i) => l === y.epochs[i]);
  const parts = [
    x.sha === y.sha ? `best-checkpoint weights identical (sha256 ${x.sha.slice(0, 12)}…)` : `best-checkpoint weights DIFFER (${x.sha.slice(0, 12)}… vs ${y.sha.slice(0, 12)}…)`,
    sameEpochs ? `all ${x.epochs.length} epochs' losses, gradient norms and validation metrics identical` : 'epoch metrics DIFFER',
    x.model === y.model ? 'same model config' : 'model configs DIFFER',
    x.headline === y.headline ? 'same test accuracies' : 'test accuracies DIFFER',
  ];
  return { method, identical: x.sha === y.sha && sameEpochs && x.model === y.model && x.headline === y.headline, detail: `${basename(a)} vs ${basename(b)}: ${parts.join('; ')}` };
}

const col = (runs: RunResult[], key: string): MeanStd => meanStd(runs.map((r) => r.headline[key] ?? NaN));

/** pretrained − scratch in points, with the standard error of the difference of two means. */
function delta(a: MeanStd, b: MeanStd): { d: number; se: number } {
  return { d: 100 * (b.mean - a.mean), se: 100 * Math.sqrt((a.std ** 2) / Math.max(1, a.n) + (b.std ** 2) / Math.max(1, b.n)) };
}

// the IN-9 variants that show what pretraining learnt: the object (Only-FG), not the background (No-FG)
const PRETRAIN_KEYS = ['Original', 'Mixed-Rand', 'Only-FG', 'No-FG'];

/** Everything demoMarkdown prints. */
export interface DemoSummary {
  date: string; machine: string; loads: number[]; wallMin: number; invocations: number; seeds: number[]; command: string;
  rows: DemoRow[]; checks: IdentityCheck[]; pretrain: RunResult | null; failed: string[];
  pretrainSetup: { train: number; epochs: number; correlation: number };
}

/** The section: setup, the table, the per-method difference with a plain verdict, and the identity check. */
export function demoMarkdown(s: DemoSummary): string {
  const load = s.loads.length ? `${Math.min(...s.loads).toFixed(1)}–${Math.max(...s.loads).toFixed(1)} (1-minute, sampled every 30 s; mean ${(s.loads.reduce((a, b) => a + b, 0) / s.loads.length).toFixed(1)})` : 'n/a';
  const out: string[] = [
    `\`${s.command}\`, ${s.date}, ${s.machine}; load average ${load}; **${s.wallMin.toFixed(1)} min wall**${s.invocations > 1 ? ` over ${s.invocations} invocations (a rerun skips finished runs)` : ''}.`,
    '',
    `Pretraining: the \`small\` ResNetV2 (\`--method orig\`, CPU preset at 32 px, Adam 5e-3 cosine, ${s.pretrainSetup.epochs} epochs) on synth-in9 with ${s.pretrainSetup.train.toLocaleString('en-US')} train images over 9 classes and backgrounds independent of the class (correlation ${s.pretrainSetup.correlation} ≈ 1/9)`
      + (s.pretrain ? `: test accuracy ${PRETRAIN_KEYS.filter((k) => k in s.pretrain!.headline).map((k) => `${k} ${(100 * s.pretrain!.headline[k]).toFixed(1)}%`).join(', ')} (chance 11.1%), ${(s.pretrain.trainSeconds / 60).toFixed(1)} min of training and validation.` : ': not finished.'),
    `Fine-tuning: synth-waterbirds with the same CPU preset (8 epochs, Adam 5e-3 cosine, 32 px) for every row; "pretrained" starts from the exported .npz (\`--init\`; the 9-class head is replaced by a zero 2-class head). Test accuracy (%) at the best-validation epoch, mean ± sample std over seeds ${s.seeds.join(', ')}:`,
    '',
    '| METHOD | init | Original | Flip | Worst-group | seeds |',
    '|---|---|---|---|---|---|',
  ];
  for (const r of s.rows) {
    out.push(`| \`${r.method}\` | ${r.init === 'scratch' ? 'scratch' : 'pretrained (synth-in9 .npz)'} | ${formatPct(col(r.runs, 'Original'))} | ${formatPct(col(r.runs, 'Flip'))} | ${formatPct(col(r.runs, 'Worst-group'))} | ${r.runs.length} |`);
  }
  out.push('');
  for (const method of [...new Set(s.rows.map((r) => r.method))]) {
    const sc = s.rows.find((r) => r.method === method && r.init === 'scratch');
    const pt = s.rows.find((r) => r.method === method && r.init === 'npz');
    if (!sc?.runs.length || !pt?.runs.length) { out.push(`- \`${method}\`: not enough finished runs to compare.`); continue; }
    const f = delta(col(sc.runs, 'Flip'), col(pt.runs, 'Flip'));
    const w = delta(col(sc.runs, 'Worst-group'), col(pt.runs, 'Worst-group'));
    const verdict = (x: { d: number; se: number }): string => (x.d > 2 * x.se ? 'helped: more than 2 standard errors' : x.d < -2 * x.se ? 'hurt: more than 2 standard errors' : 'within 2 standard errors: no clear effect');
    const perSeed = (r: DemoRow): string => r.runs.map((x) => (100 * (x.headline.Flip ?? NaN)).toFixed(1)).join(' / ');
    out.push(`- \`${method}\`: pretraining changed Flip by ${f.d >= 0 ? '+' : ''}${f.d.toFixed(1)} ± ${f.se.toFixed(1)} points (${verdict(f)}) and worst-group by ${w.d >= 0 ? '+' : ''}${w.d.toFixed(1)} ± ${w.se.toFixed(1)} (${verdict(w)}); Flip per seed, scratch ${perSeed(sc)}, pretrained ${perSeed(pt)}.`);
  }
  for (const c of s.checks) out.push(`- .npz vs .safetensors (\`${c.method}\`, seed ${s.seeds[0]}): ${c.identical ? '**identical runs**' : '**NOT identical**'}: ${c.detail}.`);
  if (s.failed.length) out.push(`- failed runs: ${s.failed.join(', ')} (logs in runs/pretrain-demo/logs/).`);
  return out.join('\n') + '\n';
}

/** Replace the section between the markers in `file` (or append it, with the markers, at the end). */
export async function writeDocsSection(file: string, md: string): Promise<void> {
  const doc = await readFile(file, 'utf8');
  const block = `${DOCS_BEGIN}\n${md.trimEnd()}\n${DOCS_END}`;
  const i = doc.indexOf(DOCS_BEGIN);
  const j = doc.indexOf(DOCS_END);
  const next = i >= 0 && j > i ? doc.slice(0, i) + block + doc.slice(j + DOCS_END.length) : `${doc.trimEnd()}\n\n${block}\n`;
  await writeFileAtomic(file, next);
}
