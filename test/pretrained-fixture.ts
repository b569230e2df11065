import { writeFile } from 'node:fs/promises';
import { npzBytes, type NamedArray } from '../trainer/weights/write-npz.ts';
import { safetensorsBytes } from '../trainer/weights/write-safetensors.ts';

/**
 * The pretrained-weights tests write files in the exact formats users download. The writers are the exporters'
 * (trainer/weights/write-*.ts); here they are called without our metadata, so the files look like Google's and
 * timm's releases: numpy.savez's `.npz` (stored or deflated, forced-zip64 local headers) and a `.safetensors` whose
 * `__metadata__` is timm's `{"format": "pt"}`.
 */

export { npyBytes, zipBytes } from '../trainer/weights/write-npz.ts';
export { hwioToOihw } from '../trainer/weights/write-timm.ts';

/** numpy.savez(file, **arrays) (savez_compressed with `deflate`), as Google's BiT release files are. */
export async function writeNpz(file: string, arrays: NamedArray[], deflate = false): Promise<void> {
  await writeFile(file, npzBytes(arrays, { deflate }));
}

/** safetensors.torch.save_file(tensors, metadata={"format": "pt"}), as timm's files on Hugging Face are. */
export async function writeSafetensors(file: string, tensors: NamedArray[]): Promise<void> {
  await writeFile(file, safetensorsBytes(tensors));
}

/**
 * Our (BiT) name → timm's, written independently of trainer/weights (bit-names.ts reads, write-timm.ts writes) so
 * the tests check both maps against a third spelling of timm's names.
 */
export function bitToTimm(name: string): string {
  const fixed: Record<string, string> = {
    'resnet/root_block/standardized_conv2d/kernel': 'stem.conv.weight', 'resnet/group_norm/gamma': 'norm.weight',
    'resnet/group_norm/beta': 'norm.bias', 'resnet/head/conv2d/kernel': 'head.fc.weight', 'resnet/head/conv2d/bias': 'head.fc.bias',
  };
  if (fixed[name]) return fixed[name];
  const m = /^resnet\/block(\d+)\/unit(\d+)\/(.*)$/.exec(name)!;
  const pre = `stages.${Number(m[1]) - 1}.blocks.${Number(m[2]) - 1}.`;
  const idx: Record<string, number> = { a: 1, b: 2, c: 3 };
  if (m[3] === 'a/proj/standardized_conv2d/kernel') return `${pre}downsample.conv.weight`;
  const g = /^([abc])\/group_norm\/(gamma|beta)$/.exec(m[3]);
  if (g) return `${pre}norm${idx[g[1]]}.${g[2] === 'gamma' ? 'weight' : 'bias'}`;
  const c = /^([abc])\/standardized_conv2d\/kernel$/.exec(m[3])!;
  return `${pre}conv${idx[c[1]]}.weight`;
}
