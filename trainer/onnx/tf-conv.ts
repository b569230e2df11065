import * as tf from '@tensorflow/tfjs-core';

/**
 * 2-D convolution (NHWC, HWIO, explicit pads, strides or dilations) with its own gradient.
 *
 * Why not tf.conv2d's registered gradient: it refuses dilation rates > 1 ("not yet supported in gradients"), which
 * the inpainter's dilated layers need, and its filter gradient is a kernel (Conv2DBackpropFilter) that the wasm
 * backend does not ship. Here the input gradient is itself a convolution (stride 1: the flipped, transposed filter
 * at the same dilation; stride s: conv2dTranspose), and the filter gradient is one matmul per kernel tap, all
 * ops every backend has.
 */
export interface ConvAttrs {
  strides: [number, number];
  dilations: [number, number];
  /** [top, left, bottom, right] */
  pads: [number, number, number, number];
}

const cache = new Map<string, (x: tf.Tensor4D, w: tf.Tensor4D) => tf.Tensor4D>();

export function conv2d(x: tf.Tensor4D, w: tf.Tensor4D, a: ConvAttrs): tf.Tensor4D {
  const key = JSON.stringify(a);
  let f = cache.get(key);
  if (!f) {
    f = makeConv(a);
    cache.set(key, f);
  }
  return f(x, w);
}

function explicit(p: [number, number, number, number]): tf.backend_util.ExplicitPadding {
  return [[0, 0], [p[0], p[2]], [p[1], p[3]], [0, 0]];
}

function makeConv(a: ConvAttrs): (x: tf.Tensor4D, w: tf.Tensor4D) => tf.Tensor4D {
  const [sh, sw] = a.strides;
  const [dh, dw] = a.dilations;
  const [pt, pl, pb, pr] = a.pads;
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
        const [, Ho, Wo] = dy.shape;
        let dx: tf.Tensor4D;
        if (sh === 1 && sw === 1) {
          const back: [number, number, number, number] = [dh * (kh - 1) - pt, dw * (kw - 1) - pl, dh * (kh - 1) - pb, dw * (kw - 1) - pr];
          if (back.some((p) => p < 0)) throw new Error(`conv2d gradient: padding ${a.pads} exceeds the dilated kernel extent`);
          const wt = tf.transpose(tf.reverse(ws, [0, 1]), [0, 1, 3, 2]) as tf.Tensor4D;
          dx = tf.conv2d(dy, wt, 1, explicit(back), 'NHWC', [dh, dw]);
        } else {
          dx = tf.conv2dTranspose(dy, ws, [B, H, W, Ci], [sh, sw], explicit(a.pads));
        }
        // dW[i, j] = Σ_{b,y,x} x_pad[b, y·s + i·d, x·s + j·d, :]ᵀ · dy[b, y, x, :]
        const xp = tf.pad(xs, [[0, 0], [pt, pb], [pl, pr], [0, 0]]);
        const dyFlat = tf.reshape(dy, [B * Ho * Wo, Co]);
        const taps: tf.Tensor2D[] = [];
        for (let i = 0; i < kh; i++) {
          for (let j = 0; j < kw; j++) {
            const y0 = i * dh, x0 = j * dw;
            const patch = sh === 1 && sw === 1
              ? tf.slice(xp, [0, y0, x0, 0], [B, Ho, Wo, Ci])
              : tf.stridedSlice(xp, [0, y0, x0, 0], [B, y0 + (Ho - 1) * sh + 1, x0 + (Wo - 1) * sw + 1, Ci], [1, sh, sw, 1]);
            taps.push(tf.matMul(tf.reshape(patch, [B * Ho * Wo, Ci]), dyFlat, true, false));
          }
        }
        const dwT = tf.reshape(tf.stack(taps), [kh, kw, Ci, Co]) as tf.Tensor4D;
        return [dx, dwT];
      },
    };
  });
  return (x, w) => f(x, w) as tf.Tensor4D;
}
