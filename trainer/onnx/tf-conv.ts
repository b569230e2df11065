import * as tf from '@tensorflow/tfjs-core';

/**
 * 2-D convolution (NHWC, HWIO, explicit pads, strides or dilations) with its own gradient.
 *
 * Why not tf.conv2d's registered gradient: it refuses dilation rates > 1 ("not yet supported in gradients"), which
 * the inpainter's dilated layers need, and its backward kernels are missing (filter) or a scalar loop (input) on
 * the wasm backend. Here both gradients are forward convolutions, which every backend runs fast (XNNPACK on wasm):
 *  - input: a stride-1 correlation of dy (with s−1 zeros inserted between rows/columns when the stride s > 1) with
 *    the spatially flipped filter, in/out channels swapped, at the forward dilation;
 *  - filter: dW[i,j,c,o] = Σ_{b,y,x} xpad[b, y·s + i·d, x·s + j·d, c] · dy[b,y,x,o] is a valid convolution of
 *    xpadᵀ [C, Hp, Wp, B] with the "filter" dyᵀ [Ho, Wo, B, O], at stride d and dilation s.
 * (Measured on wasm, batch 8: per-tap matmuls took 5–20× longer than these convolutions.)
 */
export interface ConvAttrs {
  strides: [number, number];
  dilations: [number, number];
  /** [top, left, bottom, right] */
  pads: [number, number, number, number];
}

const cache = new Map<string, (x: tf.Tensor4D, w: tf.Tensor4D) => tf.Tensor4D>();

const biasCache = new Map<string, (x: tf.Tensor4D, w: tf.Tensor4D, b: tf.Tensor1D) => tf.Tensor4D>();

export function conv2d(x: tf.Tensor4D, w: tf.Tensor4D, a: ConvAttrs): tf.Tensor4D {
  const key = JSON.stringify(a);
  let f = cache.get(key);
  if (!f) {
    f = makeConv(a);
    cache.set(key, f);
  }
  return f(x, w);
}

/**
 * conv2d + bias, the bias fused into the convolution kernel: a separate broadcast Add over [B, H, W, C] cost more
 * than some of the convolutions on wasm. Bias gradient: Σ dy over batch and space.
 */
export function conv2dBias(x: tf.Tensor4D, w: tf.Tensor4D, b: tf.Tensor1D, a: ConvAttrs): tf.Tensor4D {
  const key = JSON.stringify(a);
  let f = biasCache.get(key);
  if (!f) {
    const g = tf.customGrad((...args: (tf.Tensor | tf.GradSaveFunc)[]) => {
      const [xx, ww, bb, save] = args as [tf.Tensor4D, tf.Tensor4D, tf.Tensor1D, tf.GradSaveFunc];
      save([xx, ww]);
      return {
        value: tf.fused.conv2d({ x: xx, filter: ww, bias: bb, strides: a.strides, pad: explicit(a.pads), dataFormat: 'NHWC', dilations: a.dilations }),
        gradFunc: (dyT: tf.Tensor, saved: tf.Tensor[]) => {
          const dy = dyT as tf.Tensor4D;
          const [xs, ws] = saved as [tf.Tensor4D, tf.Tensor4D];
          return [inputGrad(dy, ws, xs.shape, a), filterGrad(xs, dy, ws.shape, a), tf.sum(dy, [0, 1, 2])];
        },
      };
    });
    f = (xx, ww, bb) => g(xx, ww, bb) as tf.Tensor4D;
    biasCache.set(key, f);
  }
  return f(x, w, b);
}

function explicit(p: [number, number, number, number]): tf.backend_util.ExplicitPadding {
  return [[0, 0], [p[0], p[2]], [p[1], p[3]], [0, 0]];
}

function makeConv(a: ConvAttrs): (x: tf.Tensor4D, w: tf.Tensor4D) => tf.Tensor4D {
  const [sh, sw] = a.strides;
  const [dh, dw] = a.dilations;
  if ((sh > 1 || sw > 1) && (dh > 1 || dw > 1)) throw new Error('conv2d: strides and dilations cannot both exceed 1');
  const forward = (x: tf.Tensor4D, w: tf.Tensor4D): tf.Tensor4D => tf.conv2d(x, w, [sh, sw], explicit(a.pads), 'NHWC', [dh, dw]);

  const f = tf.customGrad((...args: (tf.Tensor | tf.GradSaveFunc)[]) => {
    const [x, w, save] = args as [tf.Tensor4D, tf.Tensor4D, tf.GradSaveFunc];
    save([x, w]);
    return {
      value: forward(x, w),
      gradFunc: (dyT: tf.Tensor, saved: tf.Tensor[]) => {
        const dy = dyT as tf.Tensor4D;
        const [xs, ws] = saved as [tf.Tensor4D, tf.Tensor4D];
        const [B, H, W, Ci] = xs.shape;
        const [kh, kw, , Co] = ws.shape;
        const dx = inputGrad(dy, ws, [B, H, W, Ci], a);
        const dwT = filterGrad(xs, dy, [kh, kw, Ci, Co], a);
        return [dx, dwT];
      },
    };
  });
  return (x, w) => f(x, w) as tf.Tensor4D;
}

/** dx = correlation of (zero-inserted) dy with the flipped, channel-swapped filter. */
function inputGrad(dy: tf.Tensor4D, w: tf.Tensor4D, xShape: [number, number, number, number], a: ConvAttrs): tf.Tensor4D {
  const [B, H, W] = xShape;
  const [kh, kw] = w.shape;
  const [sh, sw] = a.strides;
  const [dh, dw] = a.dilations;
  const [pt, pl] = a.pads;
  const [, Ho, Wo, Co] = dy.shape;
  let z: tf.Tensor4D = dy;
  if (sh > 1 || sw > 1) {
    // z[y·s] = dy[y], zeros between: [B,Ho,1,Wo,1,C] padded to [B,Ho,s,Wo,s,C], then cut to (Ho−1)·s + 1 rows.
    const up = tf.reshape(tf.pad(tf.reshape(dy, [B, Ho, 1, Wo, 1, Co]), [[0, 0], [0, 0], [0, sh - 1], [0, 0], [0, sw - 1], [0, 0]]), [B, Ho * sh, Wo * sw, Co]);
    z = tf.slice(up, [0, 0, 0, 0], [B, (Ho - 1) * sh + 1, (Wo - 1) * sw + 1, Co]) as tf.Tensor4D;
  }
  // Output i reads zp[i + t·d] for taps t: left pad d(k−1) − p_before, right pad whatever makes H outputs.
  const padTop = dh * (kh - 1) - pt;
  const padLeft = dw * (kw - 1) - pl;
  const padBottom = H + dh * (kh - 1) - padTop - z.shape[1];
  const padRight = W + dw * (kw - 1) - padLeft - z.shape[2];
  // Negative pads mean the forward pass never read those rows of z's span; crop instead of padding.
  const crop = (t: tf.Tensor4D, top: number, left: number, bottom: number, right: number): tf.Tensor4D => {
    if (top >= 0 && left >= 0 && bottom >= 0 && right >= 0) return t;
    const y0 = Math.max(0, -top), x0 = Math.max(0, -left);
    const h = t.shape[1] - y0 - Math.max(0, -bottom), wd = t.shape[2] - x0 - Math.max(0, -right);
    return tf.slice(t, [0, y0, x0, 0], [B, h, wd, t.shape[3]]);
  };
  z = crop(z, padTop, padLeft, padBottom, padRight);
  const wt = tf.transpose(tf.reverse(w, [0, 1]), [0, 1, 3, 2]) as tf.Tensor4D;
  return tf.conv2d(z, wt, 1, [[0, 0], [Math.max(0, padTop), Math.max(0, padBottom)], [Math.max(0, padLeft), Math.max(0, padRight)], [0, 0]], 'NHWC', [dh, dw]);
}

/** dW as one valid convolution of xpadᵀ with dyᵀ (stride = forward dilation, dilation = forward stride). */
function filterGrad(x: tf.Tensor4D, dy: tf.Tensor4D, wShape: [number, number, number, number], a: ConvAttrs): tf.Tensor4D {
  const [kh, kw, Ci, Co] = wShape;
  const [sh, sw] = a.strides;
  const [dh, dw] = a.dilations;
  const [pt, pl, pb, pr] = a.pads;
  const [, Ho, Wo] = dy.shape;
  let xp = tf.pad(x, [[0, 0], [pt, pb], [pl, pr], [0, 0]]) as tf.Tensor4D;
  // Keep exactly the rows the taps read: (Ho−1)·s + (k−1)·d + 1.
  const needH = (Ho - 1) * sh + (kh - 1) * dh + 1;
  const needW = (Wo - 1) * sw + (kw - 1) * dw + 1;
  if (xp.shape[1] !== needH || xp.shape[2] !== needW) xp = tf.slice(xp, [0, 0, 0, 0], [xp.shape[0], needH, needW, Ci]);
  const xT = tf.transpose(xp, [3, 1, 2, 0]) as tf.Tensor4D;
  const dyT = tf.transpose(dy, [1, 2, 0, 3]) as tf.Tensor4D;
  const taps = tf.conv2d(xT, dyT, [dh, dw], 'valid', 'NHWC', [sh, sw]);
  return tf.transpose(taps, [1, 2, 0, 3]) as tf.Tensor4D;
}
