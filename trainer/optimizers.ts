import * as tf from '@tensorflow/tfjs-core';

/**
 * Optimizers whose update tfjs-core does not offer in the form the paper's framework (PyTorch) used.
 *
 * tfjs's `tf.train.rmsprop(lr, decay, momentum, eps)` computes
 *   v ← ρv + (1−ρ)g²;  m ← μm + lr·g / √(v + ε);  p ← p − m
 * PyTorch's `torch.optim.RMSprop` (what the authors trained CCT with) computes
 *   v ← αv + (1−α)g²;  buf ← μ·buf + g / (√v + ε);  p ← p − lr·buf
 * The two differ in where ε sits (inside vs outside the root: with v ≈ 0, e.g. a parameter whose gradient is
 * rarely non-zero, tfjs divides by 1e-4 where PyTorch divides by 1e-8) and in folding lr into the momentum buffer
 * (a learning-rate drop acts at once in PyTorch, but only as old momentum decays in tfjs).
 */

/** tfjs-core's NamedTensor (not exported from its index) */
type NamedTensor = { name: string; tensor: tf.Tensor };

interface Slot { squareAvg: tf.Variable; buf: tf.Variable }

/** PyTorch's RMSprop (not centered), as a tf.Optimizer; state round-trips through getWeights / setWeights. */
export class PyTorchRMSprop extends tf.Optimizer {
  static get className(): string { return 'PyTorchRMSprop'; }

  private readonly slots = new Map<string, Slot>();

  /** α = 0.99 and ε = 1e-8 are PyTorch's defaults. */
  constructor(public learningRate: number, public momentum = 0, public alpha = 0.99, public epsilon = 1e-8) {
    super();
    if (!(learningRate > 0)) throw new Error(`PyTorchRMSprop: learning rate must be > 0, got ${learningRate}`);
  }

  /** Slots are keyed by variable name, not by the order of the gradients (tfjs's own optimizers use the order). */
  private slot(name: string, like: tf.Tensor): Slot {
    let s = this.slots.get(name);
    if (!s) {
      s = { squareAvg: tf.tidy(() => tf.variable(tf.zerosLike(like), false)), buf: tf.tidy(() => tf.variable(tf.zerosLike(like), false)) };
      this.slots.set(name, s);
    }
    return s;
  }

  applyGradients(variableGradients: tf.NamedTensorMap | NamedTensor[]): void {
    const pairs = Array.isArray(variableGradients)
      ? variableGradients.map((v) => [v.name, v.tensor] as const)
      : Object.entries(variableGradients);
    for (const [name, g] of pairs) {
      if (g == null) continue;
      const p = tf.engine().registeredVariables[name];
      if (!p) throw new Error(`PyTorchRMSprop: no variable named ${name}`);
      const s = this.slot(name, p);
      tf.tidy(() => {
        // Same operation order as torch.optim.RMSprop's single-tensor path, so float32 rounding matches too.
        const v = tf.add(tf.mul(s.squareAvg, this.alpha), tf.mul(tf.mul(g, g), 1 - this.alpha));
        const avg = tf.add(tf.sqrt(v), this.epsilon);
        s.squareAvg.assign(v);
        if (this.momentum > 0) {
          const b = tf.add(tf.mul(s.buf, this.momentum), tf.div(g, avg));
          s.buf.assign(b);
          p.assign(tf.add(p, tf.mul(b, -this.learningRate)));
        } else {
          p.assign(tf.add(p, tf.mul(tf.div(g, avg), -this.learningRate)));
        }
      });
    }
    this.incrementIterations();
  }

  dispose(): void {
    for (const s of this.slots.values()) { s.squareAvg.dispose(); s.buf.dispose(); }
    this.slots.clear();
    super.dispose();
  }

  async getWeights(): Promise<NamedTensor[]> {
    const out: NamedTensor[] = [await this.saveIterations()];
    for (const [name, s] of this.slots) {
      out.push({ name: `${name}/square_avg`, tensor: s.squareAvg });
      out.push({ name: `${name}/momentum_buffer`, tensor: s.buf });
    }
    return out;
  }

  async setWeights(weightValues: NamedTensor[]): Promise<void> {
    const rest = await this.extractIterations(weightValues);
    for (const s of this.slots.values()) { s.squareAvg.dispose(); s.buf.dispose(); }
    this.slots.clear();
    const byName = new Map(rest.map((w) => [w.name, w.tensor]));
    for (const w of rest) {
      const m = /^(.*)\/square_avg$/.exec(w.name);
      if (!m) {
        if (!/\/momentum_buffer$/.test(w.name)) throw new Error(`PyTorchRMSprop.setWeights: unexpected weight ${w.name}`);
        continue;
      }
      const buf = byName.get(`${m[1]}/momentum_buffer`);
      if (!buf) throw new Error(`PyTorchRMSprop.setWeights: ${m[1]}/square_avg without ${m[1]}/momentum_buffer`);
      // copies: the caller disposes what it passed in (optimizer-state.ts does)
      this.slots.set(m[1], { squareAvg: tf.tidy(() => tf.variable(tf.clone(w.tensor), false)), buf: tf.tidy(() => tf.variable(tf.clone(buf), false)) });
    }
  }

  getConfig(): tf.serialization.ConfigDict {
    return { learningRate: this.learningRate, momentum: this.momentum, alpha: this.alpha, epsilon: this.epsilon };
  }
}
