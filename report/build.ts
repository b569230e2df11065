import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { UserError } from '../manifests/errors.ts';
import { writeFileAtomic } from '../manifests/io.ts';
import { writeSampleGrid } from '../pipeline/sample-grid.ts';
import { writeStressGrid } from '../pipeline/stress/grid.ts';
import type { BackendChoice } from '../trainer/backend.ts';
import { accuracyBarSpec, barData, curveData, curveSpec, renderSvg } from './charts.ts';
import { readRun, type RunRecord } from './collect.ts';
import { reportHtml, type DatasetSection, type Figure } from './html.ts';
import { buildTables, tableMarkdown, tablesCsv, type ResultTable } from './table.ts';

/**
 * `cfgen report`: reports/<name>/ with results.md and results.csv (the tables), index.html (tables, charts,
 * training curves, saliency figure, sample grids, all inline) and the figures as files beside it. This folder may
 * import both halves: it reads runs (trainer) and draws corpora's sample grids (pipeline).
 */

/** What to report on and how. */
export interface ReportOptions {
  /** run folders */
  runDirs: string[];
  name: string;
  reportsRoot: string;
  /** images in the saliency figure (0: no figure, and tfjs is never loaded) */
  saliencyImages: number;
  seed: number;
  backend: BackendChoice;
  /** draw the sample grids of the corpora the runs used and of the stress-test corpus */
  grids: boolean;
  /** the command line, recorded in the page */
  command: string;
  log?: (line: string) => void;
}

/** What was written. */
export interface ReportResult {
  dir: string;
  files: string[];
  tables: ResultTable[];
  markdown: string;
  runs: RunRecord[];
}

const slug = (s: string): string => s.replace(/[^A-Za-z0-9._-]+/g, '_');

/** The tables as results.md: a title, the per-dataset tables and their notes. */
export function resultsMarkdown(name: string, tables: readonly ResultTable[], notes: readonly string[]): string {
  return [`# Results: ${name}`, '', ...notes.flatMap((n) => [n, '']), ...tables.map(tableMarkdown)].join('\n');
}

let backendReady: Promise<void> | null = null;
async function ensureBackend(choice: BackendChoice, log: (l: string) => void): Promise<void> {
  backendReady ??= (async () => {
    const { initBackend } = await import('../trainer/backend.ts');
    const b = await initBackend({ backend: choice });
    log(`backend ${b.name} (${b.reason})`);
  })();
  return backendReady;
}

async function datasetFigures(t: ResultTable, runs: RunRecord[], o: ReportOptions, dir: string, files: string[], log: (l: string) => void): Promise<Figure[]> {
  const figures: Figure[] = [];
  const d = slug(t.dataset);
  const headlineCols = t.columns.filter((c) => c.better === 'high' && !c.key.startsWith('stress ') && !c.key.startsWith('AUPR ')).map((c) => c.key);
  const stressCols = t.columns.filter((c) => c.better === 'high' && c.key.startsWith('stress ') && c.key !== 'stress worst-group').map((c) => c.key);
  const bars = async (cols: string[], title: string, file: string, caption: string): Promise<void> => {
    if (!cols.length) return;
    const svg = await renderSvg(accuracyBarSpec(barData(t, cols), title, cols));
    await writeFileAtomic(join(dir, file), svg);
    files.push(file);
    figures.push({ title, caption, svg });
  };
  await bars(headlineCols, `${t.dataset}: test accuracy per split`, `accuracy-${d}.svg`,
    'Bars: mean over seeds; error bars: ± one sample std; dots: the seeds.');
  await bars(stressCols, `${t.dataset}: stress-test accuracy per variant`, `stress-${d}.svg`,
    'Accuracy on every variant of the stress-test corpus (docs/stress-test.md). Bars: mean over seeds; error bars: ± one sample std; dots: the seeds.');
  const curves = curveData(runs);
  if (curves.length) {
    const svg = await renderSvg(curveSpec(curves, `${t.dataset}: training curves`));
    await writeFileAtomic(join(dir, `curves-${d}.svg`), svg);
    files.push(`curves-${d}.svg`);
    figures.push({ title: `${t.dataset}: training curves`, caption: 'Per epoch (metrics.jsonl): the training objective per image and the validation metric used for model selection; one line per run.', svg });
  }
  if (o.saliencyImages > 0) {
    await ensureBackend(o.backend, log);
    const { saliencyFigure } = await import('./saliency.ts');
    const fig = await saliencyFigure(runs, { images: o.saliencyImages, seed: o.seed, cell: 112, log });
    if (fig) {
      await writeFileAtomic(join(dir, `saliency-${d}.png`), fig.png);
      files.push(`saliency-${d}.png`);
      const aps = fig.methods.map((m) => `${m.method}: ${Number.isNaN(fig.meanAp[m.method]) ? 'n/a' : fig.meanAp[m.method].toFixed(2)} (run ${m.run})`).join('; ');
      figures.push({
        title: `${t.dataset}: input-gradient saliency (${fig.subset})`, png: fig.png,
        caption: `As the paper's Figure 4: ${fig.sources.length} fixed test images (seed ${o.seed}), the best checkpoint of each METHOD's lowest seed; the first column outlines the object mask. Brighter = larger Σ_channels gradient²; AP = average precision of that ranking against the object mask. Mean AP over these images: ${aps}.`,
      });
    }
  }
  if (o.grids) {
    const corporaRoot = runs[0].config.corporaRoot;
    const base = join(corporaRoot, t.dataset);
    const used = [...new Set(runs.flatMap((r) => r.config.method.corpora))].filter((f) => existsSync(join(base, f, 'corpus.json')));
    if (used.length && existsSync(join(base, 'source'))) {
      const file = `sample-grid-${d}.png`;
      await writeSampleGrid({ base, methods: used, rows: 4, cell: 96, seed: o.seed, out: join(dir, file) });
      files.push(file);
      figures.push({ title: `${t.dataset}: training corpora`, caption: `Originals and the CF/F corpora the runs trained with (${used.join(', ')}), variant 0, as \`cfgen sample-grid\` draws them.`, png: await readFile(join(dir, file)) });
    }
    if (existsSync(join(base, 'stress-test', 'corpus.json'))) {
      const file = `stress-grid-${d}.png`;
      await writeStressGrid({ dir: join(base, 'stress-test'), rows: 4, cell: 80, seed: o.seed, out: join(dir, file) });
      files.push(file);
      figures.push({ title: `${t.dataset}: stress-test variants`, caption: 'One row per test image, one column per variant of the stress-test corpus.', png: await readFile(join(dir, file)) });
    }
  }
  return figures;
}

/** Build the report; see the comment at the top of this file. */
export async function buildReport(o: ReportOptions): Promise<ReportResult> {
  const log = o.log ?? ((l: string) => process.stderr.write(`${l}\n`));
  if (!o.runDirs.length) throw new UserError('no runs to report on', { fix: 'train a run first (`make train`), or name run folders' });
  const runs: RunRecord[] = [];
  for (const d of o.runDirs) runs.push(await readRun(d));
  const notes: string[] = [];
  const unevaluated = runs.filter((r) => !r.eval).map((r) => r.id);
  if (unevaluated.length) notes.push(`Not evaluated (no eval.json), left out of the tables: ${unevaluated.join(', ')}. Run \`make eval RUN=<id>\`.`);
  const tables = buildTables(runs.filter((r) => r.eval).map((r) => ({ id: r.id, dataset: r.dataset, method: r.method, seed: r.seed, eval: r.eval! })));
  const dir = join(o.reportsRoot, o.name);
  const files: string[] = [];
  const markdown = resultsMarkdown(o.name, tables, notes);
  await writeFileAtomic(join(dir, 'results.md'), markdown);
  await writeFileAtomic(join(dir, 'results.csv'), tablesCsv(tables));
  files.push('results.md', 'results.csv');
  const sections: DatasetSection[] = [];
  for (const t of tables) {
    log(`report: ${t.dataset}: ${t.rows.length} METHOD(s), figures`);
    sections.push({ table: t, figures: await datasetFigures(t, runs.filter((r) => r.dataset === t.dataset && r.eval), o, dir, files, log) });
  }
  await writeFileAtomic(join(dir, 'index.html'), reportHtml({ name: o.name, created: new Date().toISOString(), command: o.command, sections, runs, notes }));
  files.push('index.html');
  return { dir, files, tables, markdown, runs };
}
