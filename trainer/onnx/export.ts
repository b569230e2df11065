import onnxProto from 'onnx-proto';
import type { Graph, GraphNode, Operand, Weights } from './graph.ts';

const { onnx } = onnxProto;
type INode = onnxProto.onnx.INodeProto;
type ITensor = onnxProto.onnx.ITensorProto;
type IAttr = onnxProto.onnx.IAttributeProto;

/**
 * Graph + weights → ONNX ModelProto bytes.
 *
 * Inside the ONNX graph everything is NCHW (ONNX's Conv layout); the tfjs graph is NHWC. So axes are remapped
 * (concat, slice, transpose), filters go HWIO → OIHW, and the model's inputs/outputs are either declared NCHW
 * (`io: 'nchw'`) or declared NHWC with a Transpose at each boundary (`io: 'nhwc'`).
 *
 * Opsets 13–17 are accepted: every op emitted here has the same signature and semantics across them (Resize and
 * Clip take their parameters as inputs since 11/13; onnxruntime-node 1.30 runs up to opset 23).
 */
export interface ExportOptions {
  /** layout of the model's inputs and outputs (default 'nchw') */
  io?: 'nchw' | 'nhwc';
  /** 13..17 (default 13) */
  opset?: number;
  /** fixed spatial size [H, W] of every input; symbolic ("H", "W") when absent */
  size?: [number, number];
  /** rename graph outputs in the ONNX file (graph tensor name → ONNX name) */
  outputNames?: Record<string, string>;
  producer?: string;
  docString?: string;
}

export const SUPPORTED_OPSETS = [13, 14, 15, 16, 17] as const;

/** NHWC axis → NCHW axis. */
const AXIS_TO_NCHW = [0, 2, 3, 1];
/** position i of an NCHW tensor holds NHWC axis NCHW_FROM_NHWC[i] */
const NCHW_FROM_NHWC = [0, 3, 1, 2];

const FLOAT = onnx.TensorProto.DataType.FLOAT;
const INT64 = onnx.TensorProto.DataType.INT64;

function attrInts(name: string, ints: number[]): IAttr {
  return { name, type: onnx.AttributeProto.AttributeType.INTS, ints };
}
function attrInt(name: string, i: number): IAttr {
  return { name, type: onnx.AttributeProto.AttributeType.INT, i };
}
function attrFloat(name: string, f: number): IAttr {
  return { name, type: onnx.AttributeProto.AttributeType.FLOAT, f };
}
function attrString(name: string, s: string): IAttr {
  return { name, type: onnx.AttributeProto.AttributeType.STRING, s: new TextEncoder().encode(s) };
}

function floatTensor(name: string, dims: number[], data: Float32Array): ITensor {
  // raw_data is little-endian, which is what a Float32Array holds on every platform Node runs on.
  return { name, dims, dataType: FLOAT, rawData: new Uint8Array(data.buffer, data.byteOffset, data.byteLength).slice() };
}
function int64Tensor(name: string, values: number[]): ITensor {
  return { name, dims: [values.length], dataType: INT64, int64Data: values };
}

/** HWIO → OIHW. */
export function hwioToOihw(data: Float32Array, shape: number[]): { dims: number[]; data: Float32Array } {
  const [kh, kw, ci, co] = shape;
  const out = new Float32Array(data.length);
  for (let i = 0; i < kh; i++)
    for (let j = 0; j < kw; j++)
      for (let c = 0; c < ci; c++)
        for (let o = 0; o < co; o++) out[((o * ci + c) * kh + i) * kw + j] = data[((i * kw + j) * ci + c) * co + o];
  return { dims: [co, ci, kh, kw], data: out };
}

export function exportOnnx(graph: Graph, weights: Weights, opts: ExportOptions = {}): Uint8Array {
  const opset = opts.opset ?? 13;
  if (!(SUPPORTED_OPSETS as readonly number[]).includes(opset)) throw new Error(`exportOnnx: opset ${opset} not supported (use ${SUPPORTED_OPSETS.join(', ')})`);
  const io = opts.io ?? 'nchw';
  const nodes: INode[] = [];
  const inits: ITensor[] = [];
  const initNames = new Set<string>();
  let counter = 0;
  const fresh = (p: string) => `${p}__${counter++}`;
  const constant = (value: number): string => {
    const name = `const_${String(value).replace(/[^0-9a-z]/gi, '_')}`;
    if (!initNames.has(name)) {
      inits.push(floatTensor(name, [], Float32Array.of(value)));
      initNames.add(name);
    }
    return name;
  };
  const ints = (prefix: string, values: number[]): string => {
    const name = fresh(prefix);
    inits.push(int64Tensor(name, values));
    return name;
  };
  const operand = (o: Operand): string => (typeof o === 'number' ? constant(o) : o);

  for (const p of graph.params) {
    const w = weights[p.name];
    if (!w) throw new Error(`exportOnnx: no weights for parameter "${p.name}"`);
    if (w.shape.join() !== p.shape.join()) throw new Error(`exportOnnx: "${p.name}" has shape [${w.shape}], graph says [${p.shape}]`);
  }
  const used = new Set<string>();
  const weight = (name: string, asFilter: boolean): string => {
    if (!used.has(name)) {
      const w = weights[name];
      if (asFilter) {
        const t = hwioToOihw(w.data, w.shape);
        inits.push(floatTensor(name, t.dims, t.data));
      } else {
        inits.push(floatTensor(name, w.shape, w.data));
      }
      used.add(name);
    }
    return name;
  };

  const dim = (d: number | string) => (typeof d === 'number' ? { dimValue: d } : { dimParam: d });
  const H: number | string = opts.size?.[0] ?? 'H';
  const W: number | string = opts.size?.[1] ?? 'W';
  const valueInfo = (name: string, c: number | string) => ({
    name,
    type: { tensorType: { elemType: FLOAT, shape: { dim: (io === 'nchw' ? ['B', c, H, W] : ['B', H, W, c]).map(dim) } } },
  });

  const inputs = graph.inputs.map((i) => valueInfo(i.name, i.channels));
  for (const n of graph.nodes) nodes.push(...emit(n, weight, operand, ints, opset));
  const channels = channelCounts(graph, weights);

  // The boundary: the model's declared tensors keep the graph's names (or the requested output names); where a
  // Transpose or Identity sits at the boundary, the internal NCHW tensor is renamed so no name is defined twice.
  const rename = new Map<string, string>();
  const boundary: INode[] = [];
  for (const i of graph.inputs) {
    if (io !== 'nhwc') continue;
    rename.set(i.name, `${i.name}__nchw`);
    boundary.push({ opType: 'Transpose', input: [i.name], output: [`${i.name}__nchw`], attribute: [attrInts('perm', [0, 3, 1, 2])] });
  }
  const outNames = opts.outputNames ?? {};
  const tail: INode[] = [];
  const outputs = graph.outputs.map((o) => {
    const name = outNames[o] ?? o;
    if (io === 'nhwc' || name !== o) {
      const internal = `${o}__nchw`;
      if (graph.inputs.some((i) => i.name === o)) throw new Error(`exportOnnx: output "${o}" is an input`);
      rename.set(o, internal);
      tail.push(io === 'nhwc'
        ? { opType: 'Transpose', input: [internal], output: [name], attribute: [attrInts('perm', [0, 2, 3, 1])] }
        : { opType: 'Identity', input: [internal], output: [name] });
    }
    return valueInfo(name, channels.get(o) ?? 'C');
  });
  const r = (t: string) => rename.get(t) ?? t;
  const body = nodes.map((n) => ({ ...n, input: (n.input ?? []).map(r), output: (n.output ?? []).map(r) }));
  nodes.length = 0;
  nodes.push(...boundary, ...body, ...tail);

  const model = onnx.ModelProto.create({
    irVersion: opset <= 14 ? 7 : 8,
    opsetImport: [{ domain: '', version: opset }],
    producerName: opts.producer ?? 'cfgen trainer/onnx',
    producerVersion: '1',
    docString: opts.docString ?? '',
    graph: {
      name: graph.name,
      node: nodes.map((n) => onnx.NodeProto.create(n)),
      input: inputs.map((v) => onnx.ValueInfoProto.create(v)),
      output: outputs.map((v) => onnx.ValueInfoProto.create(v)),
      initializer: inits.map((t) => onnx.TensorProto.create(t)),
    },
  });
  return onnx.ModelProto.encode(model).finish();
}

/** Channel count of every tensor, so the outputs can be declared with their full shape. */
function channelCounts(graph: Graph, weights: Weights): Map<string, number> {
  const c = new Map<string, number>(graph.inputs.map((i) => [i.name, i.channels]));
  const of = (o: Operand) => (typeof o === 'number' ? 1 : c.get(o) ?? 0);
  for (const n of graph.nodes) {
    switch (n.op) {
      case 'conv2d': c.set(n.out, weights[n.weight].shape[3]); break;
      case 'concat': c.set(n.out, n.xs.reduce((s, x) => s + of(x), 0)); break;
      case 'slice': c.set(n.out, n.axis === 3 ? n.end - n.start : of(n.x)); break;
      case 'transpose': c.set(n.out, n.perm[3] === 3 ? of(n.x) : 0); break;
      case 'add': case 'sub': case 'mul': case 'div': c.set(n.out, Math.max(of(n.a), of(n.b))); break;
      default: c.set(n.out, of(n.x));
    }
  }
  for (const [k, v] of c) if (!v) c.delete(k);
  return c;
}

function emit(
  n: GraphNode,
  weight: (name: string, asFilter: boolean) => string,
  operand: (o: Operand) => string,
  ints: (prefix: string, values: number[]) => string,
  _opset: number,
): INode[] {
  switch (n.op) {
    case 'conv2d': {
      const w = weight(n.weight, true);
      const input = n.bias ? [n.x, w, weight(n.bias, false)] : [n.x, w];
      return [{
        opType: 'Conv', input, output: [n.out], name: n.out,
        attribute: [
          attrInts('dilations', n.dilations), attrInts('strides', n.strides), attrInts('pads', n.pads), attrInt('group', 1),
        ],
      }];
    }
    case 'relu': return [{ opType: 'Relu', input: [n.x], output: [n.out] }];
    case 'elu': return [{ opType: 'Elu', input: [n.x], output: [n.out], attribute: [attrFloat('alpha', 1)] }];
    case 'sigmoid': return [{ opType: 'Sigmoid', input: [n.x], output: [n.out] }];
    case 'tanh': return [{ opType: 'Tanh', input: [n.x], output: [n.out] }];
    case 'leakyRelu': return [{ opType: 'LeakyRelu', input: [n.x], output: [n.out], attribute: [attrFloat('alpha', n.alpha)] }];
    case 'add': case 'sub': case 'mul': case 'div': {
      const opType = { add: 'Add', sub: 'Sub', mul: 'Mul', div: 'Div' }[n.op];
      return [{ opType, input: [operand(n.a), operand(n.b)], output: [n.out] }];
    }
    case 'concat':
      return [{ opType: 'Concat', input: n.xs, output: [n.out], attribute: [attrInt('axis', AXIS_TO_NCHW[n.axis])] }];
    case 'resize': {
      const scalesName = `${n.out}__scales`;
      const scales: ITensor = { name: scalesName, dims: [4], dataType: FLOAT, floatData: [1, 1, n.scale, n.scale] };
      const attribute = n.mode === 'nearest'
        ? [attrString('mode', 'nearest'), attrString('coordinate_transformation_mode', 'asymmetric'), attrString('nearest_mode', 'floor')]
        : [attrString('mode', 'linear'), attrString('coordinate_transformation_mode', 'half_pixel')];
      // Scales travel as a Constant node so the tensor lives next to its only user.
      return [
        { opType: 'Constant', input: [], output: [scalesName], attribute: [{ name: 'value', type: onnx.AttributeProto.AttributeType.TENSOR, t: scales }] },
        { opType: 'Resize', input: [n.x, '', scalesName], output: [n.out], attribute },
      ];
    }
    case 'clip':
      return [{ opType: 'Clip', input: [n.x, operand(n.min), operand(n.max)], output: [n.out] }];
    case 'transpose': {
      // y_nhwc = transpose(x_nhwc, p); in NCHW terms y_nchw = transpose(x_nchw, q), q[i] = AXIS_TO_NCHW[p[NCHW_FROM_NHWC[i]]].
      const q = NCHW_FROM_NHWC.map((a) => AXIS_TO_NCHW[n.perm[a]]);
      return [{ opType: 'Transpose', input: [n.x], output: [n.out], attribute: [attrInts('perm', q)] }];
    }
    case 'slice':
      return [{
        opType: 'Slice',
        input: [n.x, ints(`${n.out}__starts`, [n.start]), ints(`${n.out}__ends`, [n.end]), ints(`${n.out}__axes`, [AXIS_TO_NCHW[n.axis]])],
        output: [n.out],
      }];
  }
}
