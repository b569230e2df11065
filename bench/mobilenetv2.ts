import * as tfl from '@tensorflow/tfjs-layers';

/**
 * Keras's MobileNetV2 topology (Sandler et al. 2018; keras.applications.MobileNetV2 layer names) built with
 * tfjs-layers and random weights: what `tensorflowjs_converter` makes of the real one, for benchmarks and tests
 * that cannot download it. `alpha` scales the widths (rounded to multiples of 8, as Keras does).
 */
export function mobileNetV2(opts: { size: number; alpha?: number; classes?: number; seed?: number }): tfl.LayersModel {
  const alpha = opts.alpha ?? 1;
  const seed = opts.seed ?? 0;
  const div8 = (v: number): number => Math.max(8, Math.floor((v + 4) / 8) * 8 + (Math.floor((v + 4) / 8) * 8 < 0.9 * v ? 8 : 0));
  const init = (k: number) => tfl.initializers.heNormal({ seed: seed * 1000 + k });
  let n = 0;
  const bn = (name: string) => tfl.layers.batchNormalization({ name, epsilon: 1e-3, momentum: 0.999 });
  const relu6 = (name: string) => tfl.layers.reLU({ maxValue: 6, name });
  const inp = tfl.input({ shape: [opts.size, opts.size, 3] });
  const first = div8(32 * alpha);
  let h = tfl.layers.conv2d({ filters: first, kernelSize: 3, strides: 2, padding: 'same', useBias: false, name: 'Conv1', kernelInitializer: init(n++) }).apply(inp) as tfl.SymbolicTensor;
  h = relu6('Conv1_relu').apply(bn('bn_Conv1').apply(h)) as tfl.SymbolicTensor;
  // (expansion, output channels, repeats, first stride), Keras's table
  const table: [number, number, number, number][] = [[1, 16, 1, 1], [6, 24, 2, 2], [6, 32, 3, 2], [6, 64, 4, 2], [6, 96, 3, 1], [6, 160, 3, 2], [6, 320, 1, 1]];
  let id = 0;
  for (const [t, c, reps, s] of table) {
    for (let r = 0; r < reps; r++) {
      const cin = h.shape[3] as number;
      const out = div8(c * alpha);
      const stride = r === 0 ? s : 1;
      const p = id === 0 ? 'expanded_conv_' : `block_${id}_`;
      let y = h;
      if (t !== 1) {
        y = tfl.layers.conv2d({ filters: cin * t, kernelSize: 1, useBias: false, name: `${p}expand`, kernelInitializer: init(n++) }).apply(y) as tfl.SymbolicTensor;
        y = relu6(`${p}expand_relu`).apply(bn(`${p}expand_BN`).apply(y)) as tfl.SymbolicTensor;
      }
      y = tfl.layers.depthwiseConv2d({ kernelSize: 3, strides: stride, padding: 'same', useBias: false, name: `${p}depthwise`, depthwiseInitializer: init(n++) }).apply(y) as tfl.SymbolicTensor;
      y = relu6(`${p}depthwise_relu`).apply(bn(`${p}depthwise_BN`).apply(y)) as tfl.SymbolicTensor;
      y = tfl.layers.conv2d({ filters: out, kernelSize: 1, useBias: false, name: `${p}project`, kernelInitializer: init(n++) }).apply(y) as tfl.SymbolicTensor;
      y = bn(`${p}project_BN`).apply(y) as tfl.SymbolicTensor;
      h = stride === 1 && cin === out ? tfl.layers.add({ name: `${p}add` }).apply([h, y]) as tfl.SymbolicTensor : y;
      id++;
    }
  }
  const last = alpha > 1 ? div8(1280 * alpha) : 1280;
  h = tfl.layers.conv2d({ filters: last, kernelSize: 1, useBias: false, name: 'Conv_1', kernelInitializer: init(n++) }).apply(h) as tfl.SymbolicTensor;
  h = relu6('out_relu').apply(bn('Conv_1_bn').apply(h)) as tfl.SymbolicTensor;
  h = tfl.layers.globalAveragePooling2d({ name: 'global_average_pooling2d' }).apply(h) as tfl.SymbolicTensor;
  const outp = tfl.layers.dense({ units: opts.classes ?? 1000, activation: 'softmax', name: 'predictions' }).apply(h) as tfl.SymbolicTensor;
  return tfl.model({ inputs: inp, outputs: outp, name: `mobilenetv2_${alpha}_${opts.size}` });
}
