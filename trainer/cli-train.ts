import { Command, Option } from 'commander';
import { join } from 'node:path';
import { choiceFlag, intFlag, numberFlag } from '../common/flags.ts';
import { resolveRoot, rootHelp } from '../common/paths.ts';
import { CF_LOSS_KINDS, METHOD_GRAMMAR, parseMethod, type CfLossKind } from './method.ts';
import { OPTIMIZERS, parseSchedule, type OptimizerName, type ValMetric } from './presets.ts';
import { EVAL_DEFAULTS, VAL_CACHE_MB } from './eval-defaults.ts';
import { SAL_NORMS, type SalNorm } from './sal-norm.ts';
import { UserError } from '../manifests/errors.ts';

/**
 * `cfgen train` and `cfgen eval`. Everything a user can get wrong on the command line is checked here, before tfjs,
 * a backend or a child process is loaded (`--help` loads none of them): the training loop and the evaluator are
 * imported inside the actions.
 */

/** The backends `--backend` accepts, in the order `auto` tries them. */
export const BACKENDS = ['auto', 'tensorflow-gpu', 'tensorflow', 'wasm', 'cpu'] as const;

/** The METHOD `make train` uses when none is given: the README's recommended row. */
export const DEFAULT_METHOD = 'cf-tile+f-random+sal@10';

export function trainCommand(): Command {
  return new Command('train')
    .description('Train a classifier on a dataset and its CF/F corpora, then evaluate the best-validation checkpoint.\n'
      + 'Hyperparameters come from the dataset\'s preset (paper Table 8; synth-* datasets get a CPU preset, flagged in the log); every flag overrides it.\n'
      + 'Rerunning the same command resumes the run from its last finished epoch.\n\n' + METHOD_GRAMMAR)
    .option('--method <spec>', 'what to train with, e.g. orig, cf-tile+f-random+sal (grammar above)', DEFAULT_METHOD)
    .option('--dataset <name>', 'dataset name; <corpora-root>/<name>/source must exist, or be buildable by `cfgen generate` when the METHOD needs corpora (make dataset builds it)', 'synth-waterbirds')
    .option('--seed <n>', 'seed of initialisation, order, augmentation, FGSM and mixup draws', intFlag('--seed', { min: 0 }), 0)
    .option('--epochs <n>', 'epochs (preset default)', intFlag('--epochs', { min: 1 }))
    .option('--batch <n>', 'originals per step; each brings its CF/F images, so a step holds up to (1 + #terms)·batch images (preset default)', intFlag('--batch', { min: 1 }))
    .option('--lr <x>', 'base learning rate (preset default)', numberFlag('--lr', { min: 0, minExclusive: true }))
    .addOption(new Option('--optimizer <name>', 'optimizer (preset default)').argParser(choiceFlag('--optimizer', OPTIMIZERS)))
    .option('--momentum <x>', 'SGD/RMSProp momentum, Adam beta1 (preset default)', numberFlag('--momentum', { min: 0, max: 1, maxExclusive: true }))
    .option('--weight-decay <x>', 'L2 weight decay added to the gradient, PyTorch style (preset default)', numberFlag('--weight-decay', { min: 0 }))
    .option('--schedule <s>', 'lr schedule: step:6,12,18[xF] | plateau[:P[xF]][@loss|@metric] | cosine | constant (preset default)')
    .addOption(new Option('--model <preset>', 'model: tiny (tests), small (CPU), r50x1 (BiT-S R50x1, the paper) (preset default); choices: "tiny", "small", "r50x1"').argParser(choiceFlag('--model', ['tiny', 'small', 'r50x1'] as const)))
    .option('--size <px>', 'crop side S; train resizes to round(S·8/7) then crops, eval resizes to S (preset default)', intFlag('--size', { min: 8, max: 4096 }))
    .option('--patience <n>', 'early stopping: epochs without a better val metric, 0 = off (preset default)', intFlag('--patience', { min: 0 }))
    .addOption(new Option('--val-metric <m>', 'model-selection metric on the validation split (preset default: acc; CCT auc)').argParser(choiceFlag('--val-metric', ['acc', 'worst-group', 'auc'] as const)))
    .option('--clip-norm <x>', 'global gradient-norm clip (preset default: 1.0, paper Table 8)', numberFlag('--clip-norm', { min: 0, minExclusive: true }))
    .addOption(new Option('--cf-loss <kind>', `loss of CF images: logp = -log(1-p_y) (paper), uniform = KL(U||p), uniform-except-y; one of ${CF_LOSS_KINDS.join(', ')}`)
      .argParser(choiceFlag('--cf-loss', CF_LOSS_KINDS)).default('logp'))
    .option('--init <path>', 'start from pretrained weights: a BiT .npz (BiT-M-R50x1.npz), a timm model.safetensors (or its Hugging Face folder) — their architecture replaces --model — or a checkpoint / tfjs model folder; the head is replaced when its class count differs (docs/pretrained.md)')
    .option('--backbone <dir>', 'a tfjs LayersModel folder (model.json + shards + card.json, e.g. a converted Keras MobileNetV2) as the feature extractor, with a fresh head (docs/pretrained.md)')
    .option('--backbone-layer <name>', 'the backbone layer to cut at (default: its last global pooling layer)')
    .option('--freeze <n|prefix>', 'train only the top: n = freeze the root and the first n stages (3 on r50x1 trains block4 + head); prefix = freeze every parameter before the first named <prefix>... (resnet/head: head only)')
    .addOption(new Option('--sal-norm <form>', 'saliency-term normalisation: authors = λ·mean over masked images, channels and pixels, added undivided (their code); background-area = per image over the background area, then / images in the batch (DESIGN §4)')
      .argParser(choiceFlag('--sal-norm', SAL_NORMS)).default('authors'))
    .addOption(new Option('--backend <name>', `tfjs backend: ${BACKENDS.join(', ')}`).argParser(choiceFlag('--backend', BACKENDS)).default('auto'))
    .option('--threads <n>', 'backend threads: tfjs-node intra-op threads (wasm under Node runs one thread; docs/backends-and-kernels.md)', intFlag('--threads', { min: 1, max: 256 }))
    .option('--workers <n>', 'threads per training step, data-parallel (wasm/cpu backends; 2 uses both cores of a 2-core machine; docs/cluster.md)', intFlag('--workers', { min: 1, max: 64 }), 1)
    .option('--run-id <id>', 'run folder name under --runs-root (default <dataset>-<method>-s<seed>)')
    .option('--runs-root <dir>', rootHelp('runs', 'where runs live'))
    .option('--corpora-root <dir>', rootHelp('corpora', 'where datasets\' manifests and corpora live'))
    .option('--max-steps <n>', 'stop after this many optimizer steps in total (smoke runs); the partial epoch is validated and saved', intFlag('--max-steps', { min: 1 }))
    .option('--fresh', 'delete an existing run of the same id and start over', false)
    .option('--no-eval', 'skip the final evaluation')
    .option('--no-generate', 'fail instead of running the generator when a corpus is missing')
    .option('--aupr-images <n>', 'images per saliency-AUPR subset in the final evaluation (0 = skip)', intFlag('--aupr-images', { min: 0 }), EVAL_DEFAULTS.auprImages)
    .option('--eg-samples <n>', 'expected-gradients draws per image (0 = input gradient only)', intFlag('--eg-samples', { min: 0 }), EVAL_DEFAULTS.egSamples)
    .option('--concurrency <n>', 'parallel image decodes', intFlag('--concurrency', { min: 1, max: 256 }), 8)
    .option('--val-cache-mb <n>', 'decoded validation images kept in memory between epochs, in MiB; the rest are decoded again each epoch (0 = none)', intFlag('--val-cache-mb', { min: 0 }), VAL_CACHE_MB)
    .action(async (o) => {
      // Checked before the training loop (and tfjs) is even imported: a typo costs no start-up.
      parseMethod(o.method);
      if (o.freeze !== undefined && !/\S/.test(o.freeze)) throw new UserError('--freeze needs a stage count or a parameter-name prefix', { fix: 'e.g. --freeze 3 or --freeze resnet/head' });
      if (o.backbone !== undefined && o.workers > 1) throw new UserError('--backbone does not combine with --workers > 1 (the workers build ResNetV2s)', { fix: 'drop --workers' });
      if (o.freeze !== undefined && o.workers > 1) throw new UserError('--freeze does not combine with --workers > 1 (the workers would update the frozen weights)', { fix: 'drop --workers, or --freeze' });
      const schedule = o.schedule ? parseSchedule(o.schedule) : undefined;
      const { train } = await import('./train.ts');
      await train({
        method: o.method, dataset: o.dataset, seed: o.seed, epochs: o.epochs, batch: o.batch, lr: o.lr,
        optimizer: o.optimizer as OptimizerName | undefined, momentum: o.momentum, weightDecay: o.weightDecay,
        schedule, model: o.model, size: o.size, patience: o.patience,
        valMetric: o.valMetric as ValMetric | undefined, clipNorm: o.clipNorm, freeze: o.freeze, backbone: o.backbone, backboneLayer: o.backboneLayer, cfLoss: o.cfLoss as CfLossKind, salNorm: o.salNorm as SalNorm, init: o.init, backend: o.backend,
        threads: o.threads, workers: o.workers, runId: o.runId, runsRoot: resolveRoot('runs', o.runsRoot), corporaRoot: resolveRoot('corpora', o.corporaRoot),
        maxSteps: o.maxSteps, fresh: o.fresh, evaluate: o.eval, generate: o.generate, auprImages: o.auprImages, egSamples: o.egSamples,
        concurrency: o.concurrency, valCacheMb: o.valCacheMb,
      });
    });
}

export function evalCommand(): Command {
  return new Command('eval')
    .description('Evaluate a training run at its best-validation checkpoint: test accuracy per split/variant, the dataset\'s\n'
      + 'metrics (Waterbirds Original/Flip/worst-group, IN-9 variants + next-class shift, CCT macro AUC) and saliency AUPR.\n'
      + 'Writes runs/<id>/eval.json (merged with what an earlier evaluation wrote) and prints a table.')
    .requiredOption('--run <id>', 'run id (a folder under --runs-root) or a path to a run folder')
    .option('--runs-root <dir>', rootHelp('runs', 'where runs live'))
    .option('--corpora-root <dir>', 'where datasets live (default: the one the run trained from)')
    .option('--size <px>', 'eval resize side (default: the run\'s --size)', intFlag('--size', { min: 8, max: 4096 }))
    .option('--batch <n>', 'eval batch size', intFlag('--batch', { min: 1 }), EVAL_DEFAULTS.batchSize)
    .option('--aupr-images <n>', 'images per saliency-AUPR subset (0 = skip)', intFlag('--aupr-images', { min: 0 }), EVAL_DEFAULTS.auprImages)
    .option('--eg-samples <n>', 'expected-gradients draws per image (0 = input gradient only)', intFlag('--eg-samples', { min: 0 }), EVAL_DEFAULTS.egSamples)
    .addOption(new Option('--backend <name>', `tfjs backend: ${BACKENDS.join(', ')}`).argParser(choiceFlag('--backend', BACKENDS)).default('auto'))
    .option('--threads <n>', 'backend threads (tfjs-node intra-op; wasm under Node runs one thread)', intFlag('--threads', { min: 1, max: 256 }))
    .option('--concurrency <n>', 'parallel image decodes', intFlag('--concurrency', { min: 1, max: 256 }), 8)
    .option('--stress', 'also score the run on every variant of its dataset\'s stress-test corpus (accuracy per variant, BG-gap,\n'
      + 'next-class shift, worst-group; built first with `cfgen stress-test` when missing; docs/stress-test.md)', false)
    .action(async (o) => {
      const runDir = o.run.includes('/') ? resolveRoot('runs', o.run) : join(resolveRoot('runs', o.runsRoot), o.run);
      const { existsSync } = await import('node:fs');
      if (!existsSync(join(runDir, 'config.json'))) {
        const { UserError } = await import('../manifests/errors.ts');
        throw new UserError('not a training run (no config.json)', { file: runDir, fix: 'give --run <run-id> of a folder under --runs-root, or the path to a run folder' });
      }
      const { initBackend } = await import('./backend.ts');
      const { loadModel } = await import('./checkpoint.ts');
      const { evaluateRun, formatEvalTable } = await import('./evaluate.ts');
      const b = await initBackend({ backend: o.backend, threads: o.threads });
      process.stderr.write(`backend ${b.name} (${b.reason})\n`);
      const report = await evaluateRun(runDir, {
        corporaRoot: o.corporaRoot ? resolveRoot('corpora', o.corporaRoot) : undefined, loadModel, size: o.size, batchSize: o.batch,
        auprImages: o.auprImages, egSamples: o.egSamples, concurrency: o.concurrency, log: (l) => process.stderr.write(`${l}\n`),
        stress: o.stress,
      });
      process.stdout.write(`${formatEvalTable(report)}\nresults: ${join(runDir, 'eval.json')}\nrun folder: ${runDir}\n`);
    });
}
