import * as tf from '@tensorflow/tfjs-core';
import { describeReport, loadWeightsInto } from '../checkpoint.ts';
import { UserError } from '../../manifests/errors.ts';
import { presetConfig, type Model, type ModelConfig, type PresetName } from '../model.ts';
import { matchPretrained, pretrainedConfig, pretrainedFileOf, readPretrained } from './pretrained.ts';

/**
 * `--init`: what it names decides both the architecture and the starting weights.
 * - a BiT `.npz`, a timm `.safetensors` or a Hugging Face folder holding `model.safetensors`: the file's
 *   architecture (its width and depth win over `--model`), its weights, and a fresh head when the class count
 *   differs (weights/pretrained.ts);
 * - a folder with model.json (our checkpoint, a tfjs model folder): the preset's architecture, loaded by name and
 *   shape as far as it matches (checkpoint.ts, not strict).
 * `--backbone <dir>` instead makes a tfjs LayersModel the feature extractor (trainer/backbone/).
 */

/** What decides a run's architecture: `--init`, `--backbone` (+ `--backbone-layer`), else the preset. */
export interface ArchitectureChoice {
  init?: string | null;
  backbone?: string;
  backboneLayer?: string;
  preset: PresetName;
  numClasses: number;
  /** the run's --size, checked against a backbone's fixed input size */
  size?: number;
}

/** The model config of a run: a LayersModel backbone's, the pretrained file's, else the preset's. */
export async function initModelConfig(a: ArchitectureChoice, log?: (l: string) => void): Promise<ModelConfig> {
  if (a.backbone) {
    if (a.init) throw new UserError('--backbone and --init do not combine: the backbone folder holds its pretrained weights', { fix: 'drop --init' });
    const { backboneConfig } = await import('../backbone/model.ts');
    const c = await backboneConfig(a.backbone, a.numClasses, a.backboneLayer);
    const want = c.backbone!.card.inputSize;
    if (want !== null && a.size !== undefined && a.size !== want) {
      throw new UserError(`the backbone takes ${want}×${want} images, the run's --size is ${a.size}`, { file: c.backbone!.dir, fix: `pass --size ${want} (or export the backbone with another input size)` });
    }
    log?.(`backbone ${c.backbone!.dir}: cut at ${c.backbone!.cut} (${c.backbone!.features} features), fresh ${a.numClasses}-class head; it replaces --model ${a.preset}`);
    return c;
  }
  const f = a.init ? pretrainedFileOf(a.init) : null;
  if (!f) return presetConfig(a.preset, a.numClasses);
  // shapes only: a resumed run never needs the values, and a multi-GB file is read in full once, by initWeights
  const c = pretrainedConfig(await readPretrained(f.file, f.format, { shapesOnly: true }), a.numClasses);
  if (c.name !== a.preset) log?.(`architecture from ${f.file}: ${c.name} (widths ${c.widths.join('/')}, depths ${c.depths.join('/')}); it replaces --model ${a.preset}`);
  return c;
}

/**
 * Initialise `model` (built from initModelConfig's config) from `init`. Pretrained files: all or nothing, every
 * check before the first assignment; the head is replaced (kept at the model's zero init) when its class count is
 * not the run's, and the log says so.
 */
export async function initWeights(model: Model, init: string, log: (l: string) => void): Promise<void> {
  const f = pretrainedFileOf(init);
  if (!f) {
    const rep = await loadWeightsInto(model, init, { strict: false });
    log(`initialised from ${init}: ${rep.loaded.length}/${model.paramNames.length} parameters loaded`
      + (rep.missing.length + rep.mismatched.length + rep.unused.length ? `; not loaded:\n${describeReport(rep)}` : ''));
    return;
  }
  const p = await readPretrained(f.file, f.format);
  const { values, headReplaced } = matchPretrained(p, model.config);
  model.paramNames.forEach((name, i) => {
    const v = values.get(name);
    if (v) tf.tidy(() => model.variables[i].assign(tf.tensor(v, model.variables[i].shape, 'float32')));
  });
  log(`initialised from ${f.file} (${f.format === 'bit-npz' ? 'BiT .npz' : 'timm .safetensors'}, ${model.config.name}, weight-standardisation eps ${model.config.wsEps ?? 1e-10}): ${values.size}/${model.paramNames.length} parameters loaded`
    + (headReplaced ? `; head replaced: the file's has ${p.headClasses ?? 'no'} classes, this run ${model.config.numClasses} (fresh zero-initialised head)` : ''));
}
