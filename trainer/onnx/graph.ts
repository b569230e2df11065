/**
 * A small, explicit description of a convolutional network: the one definition both the tfjs executor (training,
 * reference outputs) and the ONNX exporter read, so the exported model cannot drift from the trained one.
 *
 * Semantics are tfjs's: every tensor is 4-D NHWC, convolution weights are HWIO [kh, kw, in, out]. The exporter maps
 * axes and weights to ONNX's NCHW / OIHW.
 */

/** A tensor name, or a scalar constant. */
export type Operand = string | number;

export interface ConvNode {
  op: 'conv2d';
  x: string;
  out: string;
  /** parameter name of the HWIO filter */
  weight: string;
  /** parameter name of the [out] bias (optional) */
  bias?: string;
  strides: [number, number];
  dilations: [number, number];
  /** explicit zero padding [top, left, bottom, right] */
  pads: [number, number, number, number];
}

export type UnaryOp = 'relu' | 'elu' | 'sigmoid' | 'tanh';

export type GraphNode =
  | ConvNode
  | { op: UnaryOp; x: string; out: string }
  | { op: 'leakyRelu'; x: string; out: string; alpha: number }
  | { op: 'add' | 'sub' | 'mul' | 'div'; a: Operand; b: Operand; out: string }
  | { op: 'concat'; xs: string[]; axis: number; out: string }
  /** integer up-sampling of H and W; nearest = floor(dst / scale), linear = half-pixel centres */
  | { op: 'resize'; x: string; out: string; mode: 'nearest' | 'linear'; scale: number }
  | { op: 'clip'; x: string; out: string; min: number; max: number }
  | { op: 'transpose'; x: string; out: string; perm: [number, number, number, number] }
  /** x[..., start:end) along one axis */
  | { op: 'slice'; x: string; out: string; axis: number; start: number; end: number };

export interface GraphInput {
  name: string;
  channels: number;
}

export interface ParamSpec {
  name: string;
  shape: number[];
  /** initialisation: He-normal for filters (fan-in from the shape), zeros for biases */
  init: 'he' | 'zeros';
}

export interface Graph {
  name: string;
  inputs: GraphInput[];
  outputs: string[];
  nodes: GraphNode[];
  params: ParamSpec[];
}

/** Named float weights, tfjs layouts (HWIO filters). */
export type Weights = Record<string, { shape: number[]; data: Float32Array }>;

/** 'same' padding for an odd kernel at stride 1 with dilation d, or at stride s for sizes divisible by s. */
export function samePads(k: number, d = 1, s = 1): [number, number, number, number] {
  const total = d * (k - 1) - (s - 1);
  const before = Math.floor(Math.max(0, total) / 2);
  const after = Math.max(0, total) - before;
  return [before, before, after, after];
}

/**
 * Builds a Graph with generated tensor names, so network code reads like a forward pass:
 * `h = g.conv(h, 32, { k: 3 }); h = g.elu(h)`.
 */
export class GraphBuilder {
  private nodes: GraphNode[] = [];
  private params: ParamSpec[] = [];
  private inputs: GraphInput[] = [];
  private channels = new Map<string, number>();
  private counter = 0;

  constructor(readonly name: string) {}

  private fresh(prefix: string): string {
    return `${prefix}_${this.counter++}`;
  }

  channelsOf(x: string): number {
    const c = this.channels.get(x);
    if (c === undefined) throw new Error(`unknown tensor "${x}"`);
    return c;
  }

  input(name: string, channels: number): string {
    this.inputs.push({ name, channels });
    this.channels.set(name, channels);
    return name;
  }

  conv(x: string, outChannels: number, o: { k?: number; stride?: number; dilation?: number; name?: string; bias?: boolean } = {}): string {
    const k = o.k ?? 3, s = o.stride ?? 1, d = o.dilation ?? 1;
    if (s > 1 && d > 1) throw new Error('conv: stride and dilation cannot both exceed 1');
    const base = o.name ?? this.fresh('conv');
    const weight = `${base}.w`;
    this.params.push({ name: weight, shape: [k, k, this.channelsOf(x), outChannels], init: 'he' });
    let bias: string | undefined;
    if (o.bias !== false) {
      bias = `${base}.b`;
      this.params.push({ name: bias, shape: [outChannels], init: 'zeros' });
    }
    const out = `${base}.y`;
    this.nodes.push({ op: 'conv2d', x, out, weight, bias, strides: [s, s], dilations: [d, d], pads: samePads(k, d, s) });
    this.channels.set(out, outChannels);
    return out;
  }

  private unary(op: UnaryOp, x: string): string {
    const out = this.fresh(op);
    this.nodes.push({ op, x, out });
    this.channels.set(out, this.channelsOf(x));
    return out;
  }
  relu(x: string): string { return this.unary('relu', x); }
  elu(x: string): string { return this.unary('elu', x); }
  sigmoid(x: string): string { return this.unary('sigmoid', x); }
  tanh(x: string): string { return this.unary('tanh', x); }

  leakyRelu(x: string, alpha = 0.2): string {
    const out = this.fresh('lrelu');
    this.nodes.push({ op: 'leakyRelu', x, out, alpha });
    this.channels.set(out, this.channelsOf(x));
    return out;
  }

  private binary(op: 'add' | 'sub' | 'mul' | 'div', a: Operand, b: Operand): string {
    const out = this.fresh(op);
    this.nodes.push({ op, a, b, out });
    const ca = typeof a === 'string' ? this.channelsOf(a) : 1;
    const cb = typeof b === 'string' ? this.channelsOf(b) : 1;
    if (ca !== cb && ca !== 1 && cb !== 1) throw new Error(`${op}: channels ${ca} and ${cb} do not broadcast`);
    this.channels.set(out, Math.max(ca, cb));
    return out;
  }
  add(a: Operand, b: Operand): string { return this.binary('add', a, b); }
  sub(a: Operand, b: Operand): string { return this.binary('sub', a, b); }
  mul(a: Operand, b: Operand): string { return this.binary('mul', a, b); }
  div(a: Operand, b: Operand): string { return this.binary('div', a, b); }

  concat(xs: string[]): string {
    const out = this.fresh('concat');
    this.nodes.push({ op: 'concat', xs, axis: 3, out });
    this.channels.set(out, xs.reduce((n, x) => n + this.channelsOf(x), 0));
    return out;
  }

  upsample(x: string, scale = 2, mode: 'nearest' | 'linear' = 'nearest'): string {
    const out = this.fresh('up');
    this.nodes.push({ op: 'resize', x, out, mode, scale });
    this.channels.set(out, this.channelsOf(x));
    return out;
  }

  clip(x: string, min: number, max: number): string {
    const out = this.fresh('clip');
    this.nodes.push({ op: 'clip', x, out, min, max });
    this.channels.set(out, this.channelsOf(x));
    return out;
  }

  sliceChannels(x: string, start: number, end: number): string {
    const out = this.fresh('slice');
    this.nodes.push({ op: 'slice', x, out, axis: 3, start, end });
    this.channels.set(out, end - start);
    return out;
  }

  output(x: string): void {
    this.outputs.push(x);
  }
  private outputs: string[] = [];

  build(): Graph {
    if (!this.outputs.length) throw new Error('graph has no output');
    return { name: this.name, inputs: [...this.inputs], outputs: [...this.outputs], nodes: [...this.nodes], params: [...this.params] };
  }
}
