import { Command, Option } from 'commander';
import { resolve } from 'node:path';
import { choiceFlag, intFlag } from '../common/flags.ts';
import { resolveRoot, rootHelp } from '../common/paths.ts';
import { BACKEND_CHOICES } from '../trainer/backend.ts';
import { buildReport } from './build.ts';
import { listRunDirs } from './collect.ts';

/**
 * `cfgen report [runs…]`: a results report over training runs (docs/report.md). With no runs named, every run under
 * the runs root is reported.
 */

/** The `report` command. */
export function reportCommand(): Command {
  return new Command('report')
    .description('write reports/<name>/: results.md and results.csv (methods × splits/variants, mean ± std over seeds, best marked, the paper\'s numbers beside ours where DESIGN §8 has them) and a self-contained index.html with charts, training curves, an input-gradient saliency figure and sample grids')
    .argument('[runs...]', 'run ids (folders under --runs-root) or paths to run folders (default: every run under --runs-root)')
    .option('--name <name>', 'report folder name under --reports-root (default: the dataset when all runs share one, else "all")')
    .option('--runs-root <dir>', rootHelp('runs', 'where runs live'))
    .option('--reports-root <dir>', rootHelp('reports', 'where reports go'))
    .option('--saliency-images <n>', 'test images in the saliency figure (0: no figure, and no model is loaded)', intFlag('--saliency-images', { min: 0, max: 64 }), 4)
    .option('--seed <n>', 'which images the saliency figure and the sample grids show', intFlag('--seed', { min: 0 }), 0)
    .option('--no-grids', 'leave out the sample grids of the corpora')
    .addOption(new Option('--backend <name>', `tfjs backend for the saliency figure: ${BACKEND_CHOICES.join(', ')}`).argParser(choiceFlag('--backend', BACKEND_CHOICES)).default('auto'))
    .action(async (ids: string[], o) => {
      const runsRoot = resolveRoot('runs', o.runsRoot);
      const runDirs = ids.length ? ids.map((id) => (id.includes('/') ? resolve(id) : resolve(runsRoot, id))) : await listRunDirs(runsRoot);
      const { readRun } = await import('./collect.ts');
      let name: string = o.name;
      if (!name) {
        const datasets = new Set<string>();
        for (const d of runDirs) datasets.add((await readRun(d)).dataset);
        name = datasets.size === 1 ? [...datasets][0] : 'all';
      }
      const t0 = Date.now();
      const res = await buildReport({
        runDirs, name, reportsRoot: resolveRoot('reports', o.reportsRoot), saliencyImages: o.saliencyImages, seed: o.seed,
        backend: o.backend, grids: o.grids, command: `cfgen report ${process.argv.slice(3).join(' ')}`.trim(),
      });
      process.stdout.write(`${res.markdown}\nwrote ${res.files.length} files in ${((Date.now() - t0) / 1000).toFixed(1)} s: ${res.files.join(', ')}\nreport: ${resolve(res.dir, 'index.html')}\n`);
    });
}
