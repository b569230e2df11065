/**
 * Conv2DBackpropFilter for the wasm backend (tfjs-backend-wasm 4.22 ships none, so no conv weight gradient).
 *
 * dW[i,j,c,o] = Σ_{b,p,q} xpad[b, p·sh + i, q·sw + j, c] · dy[b, p, q, o]
 *
 * Read with c as the "batch", (p,q) as the filter taps and b as the contracted channel, that is a valid
 * convolution of xᵀ = [C, Hp, Wp, B] with the filter dyᵀ = [Ho, Wo, B, Cout] at dilation (sh, sw): XNNPACK's
 * conv does all the arithmetic; we only pad and transpose. Its output is [C, Hp-(Ho-1)sh, Wp-(Wo-1)sw, Cout]; the
 * first fh×fw taps are the filter gradient (the rest exist only when 'valid' leaves input rows unused).
 *
 * The alternative, 'taps' (im2col one tap at a time: a strided slice of x and one XNNPACK matmul per tap), is kept
 * for comparison and tested, but measured slower (bench/roofline.ts): the wasm StridedSlice is a slow copy, e.g.
 * 64x64x3→16 stride 2 at batch 32: 675 ms per-tap vs 64 ms by conv.
 */
import { backend_util, type KernelConfig, type TensorInfo } from '@tensorflow/tfjs-core';
import type { BackendWasm } from '@tensorflow/tfjs-backend-wasm';
import { call, release, reshape, type Info } from './wasm_util.ts';

interface Conv2DBackpropFilterAttrs {
  strides: number | [number, number];
  pad: 'valid' | 'same' | number | backend_util.ExplicitPadding;
  dataFormat: 'NHWC' | 'NCHW';
  dimRoundingMode?: 'floor' | 'round' | 'ceil';
  filterShape: [number, number, number, number];
}

export type FilterGradStrategy = 'taps' | 'conv';
let strategy: FilterGradStrategy = 'conv';
/** for benchmarks: choose the composition (default 'conv', measured faster) */
export function setFilterGradStrategy(s: FilterGradStrategy): void { strategy = s; }

export function conv2DBackpropFilterWasm(
  backend: BackendWasm, x: Info, dy: Info, attrs: Conv2DBackpropFilterAttrs,
): Info {
  return strategy === 'taps' ? filterGradByTaps(backend, x, dy, attrs) : filterGradByConv(backend, x, dy, attrs);
}

/**
 * One matmul per filter tap: dW[i,j] = tap(i,j)ᵀ · dy, with tap(i,j)ᵀ = xpadᵀ[:, :, i::sh, j::sw] taken from a
 * single [C, B, Hp, Wp] transpose of x, so every tap is already a contiguous [C, N] matrix, and dy ([N, Cout]) is
 * the matmul's right operand for every tap, which XNNPACK packs once and caches.
 */
function filterGradByTaps(backend: BackendWasm, x: Info, dy: Info, attrs: Conv2DBackpropFilterAttrs): Info {
  const { info, fh, fw, cin, cout } = convGeometry(x, attrs);
  const { top, bottom, left, right } = info.padInfo;
  const [b, ho, wo] = dy.shape;
  const n = b * ho * wo;
  const sh = info.strideHeight, sw = info.strideWidth;
  const owned: Info[] = [];
  const keep = (t: Info): Info => { owned.push(t); return t; };
  try {
    let xp = x;
    if (top || bottom || left || right) {
      xp = keep(call('PadV2', backend, { x }, { paddings: [[0, 0], [top, bottom], [left, right], [0, 0]], constantValue: 0 }));
    }
    const xT = keep(call('Transpose', backend, { x: xp }, { perm: [3, 0, 1, 2] }));
    const dy2 = keep(reshape(backend, dy, [n, cout]));
    const perTap: Info[] = [];
    for (let i = 0; i < fh; i++) {
      for (let j = 0; j < fw; j++) {
        const whole = i === 0 && j === 0 && sh === 1 && sw === 1 && xT.shape[2] === ho && xT.shape[3] === wo;
        const tap = whole ? xT : keep(call('StridedSlice', backend, { x: xT }, {
          begin: [0, 0, i, j], end: [cin, b, i + (ho - 1) * sh + 1, j + (wo - 1) * sw + 1], strides: [1, 1, sh, sw],
          beginMask: 0, endMask: 0, ellipsisMask: 0, newAxisMask: 0, shrinkAxisMask: 0,
        }));
        const tap2 = keep(reshape(backend, tap, [cin, n]));
        perTap.push(keep(call('BatchMatMul', backend, { a: tap2, b: dy2 }, { transposeA: false, transposeB: false })));
      }
    }
    const stacked = perTap.length === 1 ? perTap[0] : keep(call('Concat', backend,
      perTap as unknown as Record<string, Info>, { axis: 0 }));
    return reshape(backend, stacked, [fh, fw, cin, cout]);
  } finally {
    release(backend, ...owned);
  }
}

function convGeometry(x: Info, attrs: Conv2DBackpropFilterAttrs): {
  info: backend_util.Conv2DInfo; fh: number; fw: number; cin: number; cout: number;
} {
  const { strides, pad, dataFormat, dimRoundingMode, filterShape } = attrs;
  if (dataFormat === 'NCHW') throw new Error('Conv2DBackpropFilter (wasm): only NHWC is supported, as for wasm Conv2D');
  const info = backend_util.computeConv2DInfo(
    x.shape as [number, number, number, number], filterShape, strides, 1, pad, dimRoundingMode, false, 'channelsLast');
  const [fh, fw, cin, cout] = filterShape;
  return { info, fh, fw, cin, cout };
}

function filterGradByConv(backend: BackendWasm, x: Info, dy: Info, attrs: Conv2DBackpropFilterAttrs): Info {
  const { info, fh, fw, cin, cout } = convGeometry(x, attrs);
  const { top, bottom, left, right } = info.padInfo;

  const owned: Info[] = [];
  try {
    let xp = x;
    if (top || bottom || left || right) {
      // 'same' / explicit padding may pad more rows than any tap reads; the extra taps are sliced off below
      xp = call('PadV2', backend, { x }, { paddings: [[0, 0], [top, bottom], [left, right], [0, 0]], constantValue: 0 });
      owned.push(xp);
    }
    const xT = call('Transpose', backend, { x: xp }, { perm: [3, 1, 2, 0] });
    owned.push(xT);
    const dyT = call('Transpose', backend, { x: dy }, { perm: [1, 2, 0, 3] });
    owned.push(dyT);
    const taps = call('Conv2D', backend, { x: xT, filter: dyT }, {
      strides: [1, 1], pad: 'valid', dataFormat: 'NHWC', dilations: [info.strideHeight, info.strideWidth],
    });
    owned.push(taps);
    let cropped = taps;
    if (taps.shape[1] !== fh || taps.shape[2] !== fw) {
      cropped = call('Slice', backend, { x: taps }, { begin: [0, 0, 0, 0], size: [cin, fh, fw, cout] });
      owned.push(cropped);
    }
    return call('Transpose', backend, { x: cropped }, { perm: [1, 2, 0, 3] });
  } finally {
    release(backend, ...owned);
  }
}

export const conv2DBackpropFilterWasmConfig: KernelConfig = {
  kernelName: 'Conv2DBackpropFilter',
  backendName: 'wasm',
  kernelFunc: ({ inputs, backend, attrs }) => conv2DBackpropFilterWasm(
    backend as unknown as BackendWasm, inputs.x as TensorInfo, inputs.dy as TensorInfo,
    attrs as unknown as Conv2DBackpropFilterAttrs),
};
