import { Command, InvalidArgumentError, Option } from 'commander';
import { join, resolve } from 'node:path';
import { METHOD_GRAMMAR, parseCfLoss } from './method.ts';
import { OPTIMIZERS, parseSchedule, type OptimizerName, type ValMetric } from './presets.ts';
import { EVAL_DEFAULTS, evaluateRun, formatEvalTable } from './evaluate.ts';
import { REPO_ROOT, train } from './train.ts';

/**
 * `cfgen train` and `cfgen eval`. tfjs and the backends load only when a command runs (the top-level CLI imports
 * this file lazily too).
 */

const int = (name: string) => (v: string): number => {
  const n = Number(v);
  if (!Number.isInteger(n)) throw new InvalidArgumentError(`${name} must be an integer`);
  return n;
};
const num = (name: string) => (v: string): number => {
  const n = Number(v);
  if (!Number.isFinite(n)) throw new InvalidArgumentError(`${name} must be a number`);
  return n;
};

const BACKENDS = ['auto', 'tensorflow-gpu', 'tensorflow', 'wasm', 'cpu'] as const;

export function trainCommand(): Command {
  return new Command('train')
    .description('Train a classifier on a dataset and its CF/F corpora, then evaluate the best-validation checkpoint.\n'
      + 'Hyperparameters come from the dataset\'s preset (paper Table 8; synth-* datasets get a CPU preset, flagged in the log); every flag overrides it.\n'
      + 'Rerunning the same command resumes the run from its last finished epoch.\n\n' + METHOD_GRAMMAR)
    .requiredOption('--method <spec>', 'what to train with, e.g. orig, cf-tile+f-random+sal (grammar above)')
    .requiredOption('--dataset <name>', 'dataset name: corpora/<name>/source must exist (make dataset)')
    .option('--seed <n>', 'seed of initialisation, order, augmentation, FGSM and mixup draws', int('--seed'), 0)
    .option('--epochs <n>', 'epochs (preset default)', int('--epochs'))
    .option('--batch <n>', 'originals per step; each brings its CF/F images, so a step holds up to (1 + #terms)·batch images (preset default)', int('--batch'))
    .option('--lr <x>', 'base learning rate (preset default)', num('--lr'))
    .addOption(new Option('--optimizer <name>', 'optimizer (preset default)').choices(OPTIMIZERS as string[]))
    .option('--momentum <x>', 'SGD/RMSProp momentum, Adam beta1 (preset default)', num('--momentum'))
    .option('--weight-decay <x>', 'L2 weight decay added to the gradient, PyTorch style (preset default)', num('--weight-decay'))
    .option('--schedule <s>', 'lr schedule: step:6,12,18[xF] | plateau[:P[xF]] | cosine | constant (preset default)')
    .addOption(new Option('--model <preset>', 'model: tiny (tests), small (CPU), r50x1 (BiT-S R50x1, the paper) (preset default)').choices(['tiny', 'small', 'r50x1']))
    .option('--size <px>', 'crop side S; train resizes to S+S/8 then crops, eval resizes to S (preset default)', int('--size'))
    .option('--patience <n>', 'early stopping: epochs without a better val metric, 0 = off (preset default)', int('--patience'))
    .addOption(new Option('--val-metric <m>', 'model-selection metric on the validation split (preset default: acc; CCT auc)').choices(['acc', 'worst-group', 'auc']))
    .option('--clip-norm <x>', 'global gradient-norm clip (preset default: 1.0, paper Table 8)', num('--clip-norm'))
    .addOption(new Option('--cf-loss <kind>', 'loss of CF images: logp = -log(1-p_y) (paper), uniform = KL(U||p), uniform-except-y').default('logp'))
    .option('--init <dir>', 'start from these weights (a checkpoint folder, e.g. runs/<id>/best or converted BiT); the head is skipped if its class count differs')
    .addOption(new Option('--backend <name>', 'tfjs backend').choices(BACKENDS as unknown as string[]).default('auto'))
    .option('--threads <n>', 'backend threads: tfjs-node intra-op threads (wasm under Node runs one thread; see README.md, "tfjs backends")', int('--threads'))
    .option('--workers <n>', 'threads per training step, data-parallel (wasm/cpu backends; 2 uses both cores of a 2-core machine; not with two trainings side by side; README.md, "Data-parallel training steps")', int('--workers'), 1)
    .option('--run-id <id>', 'run folder name under --runs-root (default <dataset>-<method>-s<seed>)')
    .option('--runs-root <dir>', 'where runs live (env CFGEN_RUNS_ROOT)', process.env.CFGEN_RUNS_ROOT ?? join(REPO_ROOT, 'runs'))
    .option('--corpora-root <dir>', 'where datasets\' manifests and corpora live (env CFGEN_CORPORA_ROOT)', process.env.CFGEN_CORPORA_ROOT ?? join(REPO_ROOT, 'corpora'))
    .option('--max-steps <n>', 'stop after this many optimizer steps in total (smoke runs); the partial epoch is validated and saved', int('--max-steps'))
    .option('--fresh', 'delete an existing run of the same id and start over', false)
    .option('--no-eval', 'skip the final evaluation')
    .option('--no-generate', 'fail instead of running the generator when a corpus is missing')
    .option('--aupr-images <n>', 'images per saliency-AUPR subset in the final evaluation (0 = skip)', int('--aupr-images'), EVAL_DEFAULTS.auprImages)
    .option('--eg-samples <n>', 'expected-gradients draws per image (0 = input gradient only)', int('--eg-samples'), EVAL_DEFAULTS.egSamples)
    .option('--concurrency <n>', 'parallel image decodes', int('--concurrency'), 8)
    .action(async (o) => {
      const cfLoss = parseCfLoss(o.cfLoss);
      await train({
        method: o.method, dataset: o.dataset, seed: o.seed, epochs: o.epochs, batch: o.batch, lr: o.lr,
        optimizer: o.optimizer as OptimizerName | undefined, momentum: o.momentum, weightDecay: o.weightDecay,
        schedule: o.schedule ? parseSchedule(o.schedule) : undefined, model: o.model, size: o.size, patience: o.patience,
        valMetric: o.valMetric as ValMetric | undefined, clipNorm: o.clipNorm, cfLoss, init: o.init, backend: o.backend, threads: o.threads, workers: o.workers,
        runId: o.runId, runsRoot: o.runsRoot, corporaRoot: o.corporaRoot, maxSteps: o.maxSteps, fresh: o.fresh, evaluate: o.eval,
        generate: o.generate, auprImages: o.auprImages, egSamples: o.egSamples, concurrency: o.concurrency,
      });
    });
}

export function evalCommand(): Command {
  return new Command('eval')
    .description('Evaluate a training run at its best-validation checkpoint: test accuracy per split/variant, the dataset\'s\n'
      + 'metrics (Waterbirds Original/Flip/worst-group, IN-9 variants + next-class shift, CCT macro AUC) and saliency AUPR.\n'
      + 'Writes runs/<id>/eval.json and prints a table.')
    .requiredOption('--run <id>', 'run id (a folder under --runs-root) or a path to a run folder')
    .option('--runs-root <dir>', 'where runs live (env CFGEN_RUNS_ROOT)', process.env.CFGEN_RUNS_ROOT ?? join(REPO_ROOT, 'runs'))
    .option('--corpora-root <dir>', 'where datasets live (default: the one the run trained from)')
    .option('--size <px>', 'eval resize side (default: the run\'s --size)', int('--size'))
    .option('--batch <n>', 'eval batch size', int('--batch'), EVAL_DEFAULTS.batchSize)
    .option('--aupr-images <n>', 'images per saliency-AUPR subset (0 = skip)', int('--aupr-images'), EVAL_DEFAULTS.auprImages)
    .option('--eg-samples <n>', 'expected-gradients draws per image (0 = input gradient only)', int('--eg-samples'), EVAL_DEFAULTS.egSamples)
    .addOption(new Option('--backend <name>', 'tfjs backend').choices(BACKENDS as unknown as string[]).default('auto'))
    .option('--threads <n>', 'backend threads (tfjs-node intra-op; wasm under Node runs one thread)', int('--threads'))
    .option('--concurrency <n>', 'parallel image decodes', int('--concurrency'), 8)
    .action(async (o) => {
      const { initBackend } = await import('./backend.ts');
      const { loadModel } = await import('./checkpoint.ts');
      const runDir = o.run.includes('/') ? resolve(o.run) : join(resolve(o.runsRoot), o.run);
      const b = await initBackend({ backend: o.backend, threads: o.threads });
      process.stderr.write(`backend ${b.name} (${b.reason})\n`);
      const report = await evaluateRun(runDir, {
        corporaRoot: o.corporaRoot ? resolve(o.corporaRoot) : undefined, loadModel, size: o.size, batchSize: o.batch,
        auprImages: o.auprImages, egSamples: o.egSamples, concurrency: o.concurrency, log: (l) => process.stderr.write(`${l}\n`),
      });
      process.stdout.write(`${formatEvalTable(report)}\nwrote ${join(runDir, 'eval.json')}\n`);
    });
}
