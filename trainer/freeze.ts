import { UserError } from '../manifests/errors.ts';

/**
 * `--freeze <n|prefix>`: fine-tune only the top of a network. Parameters are listed in forward order (root,
 * stages, final GroupNorm, head; a LayersModel backbone's weights in layer order, then its head), so "the top"
 * is everything from one parameter on:
 * - `n` (ResNetV2): freeze the root and the first n stages; `--freeze 3` on r50x1 trains block4, the final GN and
 *   the head; `--freeze 4` trains the final GN and the head.
 * - `prefix`: freeze every parameter before the first whose name starts with it: `resnet/block4` (= 3),
 *   `resnet/head` (the head only: a linear probe), or a backbone layer's name (`block_16`, `head`).
 * Frozen variables get `trainable = false`: the step differentiates only the others (no weight gradients, no
 * optimizer slots, no backprop below the lowest trainable layer unless an input gradient needs it).
 */

/** Index of the first trainable parameter for a freeze spec; a UserError when the spec names nothing. */
export function firstTrainableIndex(paramNames: readonly string[], spec: string): number {
  const s = spec.trim();
  if (/^\d+$/.test(s)) {
    const n = Number(s);
    if (n === 0) return 0;
    const stages = new Set(paramNames.map((p) => /^resnet\/block(\d+)\//.exec(p)?.[1]).filter((b): b is string => b !== undefined));
    if (stages.size === 0) throw new UserError(`--freeze ${s}: a stage count needs a ResNetV2 (resnet/block* parameters); give a parameter-name prefix instead`, { fix: `e.g. --freeze ${paramNames[Math.floor(paramNames.length * 0.8)] ?? 'head'}` });
    if (n > stages.size) throw new UserError(`--freeze ${s}: the model has ${stages.size} stages`, { fix: `use 0..${stages.size}, or --freeze resnet/head to train the head only` });
    const next = n < stages.size ? `resnet/block${n + 1}/` : 'resnet/group_norm/';
    return paramNames.findIndex((p) => p.startsWith(next));
  }
  const i = paramNames.findIndex((p) => p.startsWith(s));
  if (i < 0) {
    const examples = [...new Set(paramNames.map((p) => p.split('/').slice(0, 2).join('/')))].slice(-6).join(', ');
    throw new UserError(`--freeze ${s}: no parameter name starts with "${s}"`, { fix: `give a stage count or a prefix of a parameter name (e.g. ${examples})` });
  }
  return i;
}

/**
 * Mark the parameters before the first trainable one as frozen (`trainable = false`); returns a log line.
 * `variables[i]` is named `paramNames[i]`.
 */
export function applyFreeze(model: { paramNames: string[]; variables: { trainable: boolean; size: number }[] }, spec: string): string {
  const first = firstTrainableIndex(model.paramNames, spec);
  let frozen = 0, trainable = 0;
  model.variables.forEach((v, i) => {
    v.trainable = i >= first;
    if (v.trainable) trainable += v.size; else frozen += v.size;
  });
  return `--freeze ${spec}: ${first} of ${model.paramNames.length} parameter tensors frozen (${(frozen / 1e6).toFixed(2)} M values); training from ${model.paramNames[first]} on (${(trainable / 1e6).toFixed(2)} M values)`;
}
