import type { Model } from './model.ts';
import { createModel, type CreateModelOptions } from './model.ts';
import type { ModelConfig } from './model-config.ts';

/**
 * Builds the model a config describes, whichever kind: our ResNetV2 (createModel, synchronous) or a tfjs
 * LayersModel backbone (trainer/backbone/, which reads its folder; tfjs-layers is loaded only then).
 */
export async function buildModel(config: ModelConfig, seed: number, opts: CreateModelOptions = {}): Promise<Model> {
  if (!config.backbone) return createModel(config, seed, opts);
  const { loadBackboneModel } = await import('./backbone/model.ts');
  return loadBackboneModel(config);
}
