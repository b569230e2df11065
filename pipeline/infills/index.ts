import type { InfillMethod, Params } from './types.ts';
import { GREY_U8, greyInfill } from './grey.ts';
import { randomInfill } from './random.ts';
import { shuffleInfill, type ShuffleScope } from './shuffle.ts';
import { largestBackgroundStrip, largestEmptyRectangle, tileInfill, type TileMode } from './tile.ts';
import { mixedRandInfill } from './mixed-rand.ts';
import { checkKeys, enumParam, gridParam, intParam, numberParam } from './params.ts';

export * from './types.ts';
export { GREY_U8, greyInfill } from './grey.ts';
export { randomInfill, type RandomParams } from './random.ts';
export { shuffleInfill, type ShuffleScope } from './shuffle.ts';
export { tileInfill, tileFromRectangle, largestEmptyRectangle, largestBackgroundStrip, type TileMode } from './tile.ts';
export { mixedRandInfill } from './mixed-rand.ts';

/**
 * The infill registry: every method the generator can run, by name (`<kind>-<method>`). Built-ins are the pure
 * functions of this folder; a model infill (the ONNX inpainter, `cf-cagan`) adds itself with `registerInfill`.
 */

const SCOPES = ['region', 'image', 'batch'] as const;
const TILE_MODES = ['maxrect', 'strip'] as const;

function parseRandom(name: string) {
  return (raw: Params): Params => {
    checkKeys(name, raw, ['grid', 'sigma']);
    const p = { grid: [1, 1], sigma: 0.2, ...raw };
    return { grid: gridParam(name, 'grid', p.grid), sigma: numberParam(name, 'sigma', p.sigma, 0, 10) };
  };
}

function parseShuffle(name: string) {
  return (raw: Params): Params => {
    checkKeys(name, raw, ['scope', 'batch']);
    const p = { scope: 'region', batch: 8, ...raw };
    const scope = enumParam(name, 'scope', p.scope, SCOPES);
    // batch size only means something for scope=batch; keep params canonical so equal configs hash equal
    return scope === 'batch' ? { scope, batch: intParam(name, 'batch', p.batch, 2, 256) } : { scope };
  };
}

/**
 * The output version of the tiling methods: `mode=strip` changed output when the strip rule moved from area to run
 * length (2, as cf-tile-strip); the default `maxrect` never changed (1), so default-mode corpus ids stay as they were.
 */
const tileAlgorithm = (p: Params): number => (p.mode === 'strip' ? 2 : 1);

function parseTile(name: string, mode: TileMode) {
  return (raw: Params): Params => {
    checkKeys(name, raw, ['mode']);
    return { mode: enumParam(name, 'mode', raw.mode ?? mode, TILE_MODES) };
  };
}

const shuffleDonors = {
  count: (p: Params) => (p.scope === 'batch' ? Number(p.batch) - 1 : 0),
  otherClass: false,
  spares: 4,
};

const BUILTINS: InfillMethod[] = [
  {
    name: 'cf-grey', method: 'grey', kind: 'cf', maskKind: 'box', mode: 'sync', deterministic: true,
    description: `box hole filled with mid-grey (${GREY_U8}, i.e. 0.5; see docs/generate.md)`,
    defaults: { value: GREY_U8 },
    parseParams: (raw) => { checkKeys('cf-grey', raw, ['value']); return { value: intParam('cf-grey', 'value', raw.value ?? GREY_U8, 0, 255) }; },
    apply: (img, region, _rng, p) => ({ status: 'ok', image: greyInfill(img, region, Number(p.value)) }),
  },
  {
    name: 'cf-random', method: 'random', kind: 'cf', maskKind: 'box', mode: 'sync', deterministic: false,
    description: 'box hole filled with a U(0,1) colour grid (bilinear) + N(0, sigma) noise, clipped',
    defaults: { grid: [1, 1], sigma: 0.2 },
    parseParams: parseRandom('cf-random'),
    apply: (img, region, rng, p) => ({ status: 'ok', image: randomInfill(img, region, rng, p as { grid: [number, number]; sigma: number }) }),
  },
  {
    name: 'cf-shuffle', method: 'shuffle', kind: 'cf', maskKind: 'box', mode: 'sync', deterministic: false,
    description: 'box hole pixels permuted (scope region | image | batch)',
    defaults: { scope: 'region' },
    parseParams: parseShuffle('cf-shuffle'),
    donors: shuffleDonors,
    apply: (img, region, rng, p, ctx) => ({ status: 'ok', image: shuffleInfill(img, region, rng, p.scope as ShuffleScope, (ctx.donors ?? []).map((d) => d.image)) }),
  },
  {
    name: 'cf-tile', method: 'tile', kind: 'cf', maskKind: 'box', mode: 'sync', deterministic: true,
    description: 'box hole filled by tiling the largest background rectangle (Algorithm 1; mode=strip: authors\' code)',
    defaults: { mode: 'maxrect' },
    algorithm: tileAlgorithm,
    parseParams: parseTile('cf-tile', 'maxrect'),
    apply: (img, region, _rng, p) => tileInfill(img, region, p.mode as TileMode),
  },
  {
    name: 'cf-tile-strip', method: 'tile', kind: 'cf', maskKind: 'box', mode: 'sync', deterministic: true,
    // 2: rows vs columns chosen by run length (the authors' rule), no longer by area; differs on non-square images
    algorithm: 2,
    description: 'cf-tile with mode=strip (the authors\' rectangle: longest full-width row / full-height column run)',
    defaults: { mode: 'strip' },
    parseParams: parseTile('cf-tile-strip', 'strip'),
    apply: (img, region, _rng, p) => tileInfill(img, region, p.mode as TileMode),
  },
  {
    name: 'f-random', method: 'random', kind: 'f', maskKind: 'seg', mode: 'sync', deterministic: false,
    description: 'background filled like cf-random',
    defaults: { grid: [1, 1], sigma: 0.2 },
    parseParams: parseRandom('f-random'),
    apply: (img, region, rng, p) => ({ status: 'ok', image: randomInfill(img, region, rng, p as { grid: [number, number]; sigma: number }) }),
  },
  {
    name: 'f-shuffle', method: 'shuffle', kind: 'f', maskKind: 'seg', mode: 'sync', deterministic: false,
    description: 'background pixels permuted (scope region | image | batch)',
    defaults: { scope: 'region' },
    parseParams: parseShuffle('f-shuffle'),
    donors: shuffleDonors,
    apply: (img, region, rng, p, ctx) => ({ status: 'ok', image: shuffleInfill(img, region, rng, p.scope as ShuffleScope, (ctx.donors ?? []).map((d) => d.image)) }),
  },
  {
    name: 'f-mixed-rand', method: 'mixed-rand', kind: 'f', maskKind: 'seg', mode: 'sync', deterministic: false,
    description: 'background replaced by the tiled background of a seeded image of another class, same split',
    defaults: { mode: 'maxrect' },
    algorithm: tileAlgorithm,
    parseParams: parseTile('f-mixed-rand', 'maxrect'),
    donors: {
      count: () => 1, otherClass: true, spares: 7,
      accept: (d, p) => ((p.mode === 'strip' ? largestBackgroundStrip(d.box) : largestEmptyRectangle(d.box)) ? null : 'its object box leaves no background to tile'),
    },
    apply: (img, region, _rng, p, ctx) => mixedRandInfill(img, region, ctx.label ?? -1, ctx.donors ?? [], p.mode as TileMode),
  },
];

/** What `generate` runs when --methods is not given (plus registered model infills that report themselves ready). */
export const DEFAULT_METHODS = ['cf-grey', 'cf-random', 'cf-shuffle', 'cf-tile', 'f-random', 'f-shuffle', 'f-mixed-rand'] as const;

/**
 * The registry's state lives on globalThis under a registered symbol, so every copy of this module in a thread
 * shares it. A plugin outside the repository, in a folder whose package.json does not say "type": "module", is
 * loaded by tsx as CommonJS and gets its own copy of this file; without the shared state its registerInfill would
 * fill a registry nobody reads, and `generate` would call the method unknown. Worker threads have their own
 * globalThis and import the plugins themselves.
 */
interface RegistryState {
  methods: Map<string, InfillMethod>;
  /** name → module URL that worker threads import to get the method (sync plugins) */
  workerModules: Map<string, string>;
  /** name → module URL of the plugin that registered it (what `generate` hashes into the corpus config) */
  origins: Map<string, string>;
  /** built-ins are tested to write only inside their region (test/infills-core.test.ts), so the pipeline skips its
   *  safety composite for them; anything registered from outside is composited */
  builtin: Set<string>;
}

const STATE_KEY = Symbol.for('cfgen.pipeline.infill-registry.v1');
const state: RegistryState = ((globalThis as Record<symbol, RegistryState | undefined>)[STATE_KEY] ??= {
  methods: new Map(BUILTINS.map((m) => [m.name, m])),
  workerModules: new Map(),
  origins: new Map(),
  builtin: new Set(BUILTINS.map((m) => m.name)),
});

/** Names a plugin may not silently replace: the built-in methods and the ONNX inpainter (pipeline/inpaint/). */
export const RESERVED_INFILL_NAMES: readonly string[] = [...BUILTINS.map((m) => m.name), 'cf-cagan'];

/**
 * Add an infill method (e.g. the ONNX inpainter as `cf-cagan`, mode 'batch'). `moduleUrl` is the module that
 * registers it: worker threads import it so sync plugins also run there (batch methods run on the main thread),
 * and `generate` records its path and the SHA-256 of its source in the corpus config.
 * Registering a name twice replaces the method (tests, reloading a model); `generate --plugin` refuses a plugin
 * that replaces a reserved name unless told to allow it (pipeline/plugins.ts).
 */
export function registerInfill(method: InfillMethod, opts: { moduleUrl?: string } = {}): void {
  if (!/^(cf|f)-[a-z0-9-]+$/.test(method.name)) throw new Error(`infill name "${method.name}" must look like cf-<method> or f-<method>`);
  if (!method.name.startsWith(`${method.kind}-`)) throw new Error(`infill "${method.name}": kind ${method.kind} does not match the name`);
  state.methods.set(method.name, method);
  state.builtin.delete(method.name);
  if (opts.moduleUrl) {
    state.workerModules.set(method.name, opts.moduleUrl);
    state.origins.set(method.name, opts.moduleUrl);
  } else {
    state.workerModules.delete(method.name);
    state.origins.delete(method.name);
  }
}

/**
 * Record that `name` was registered by the plugin module at `moduleUrl` (for methods a plugin registered without
 * passing its own moduleUrl, e.g. a CommonJS plugin that has no import.meta.url): its source is then hashed into
 * the corpus config, and a sync method is also imported by the worker threads from there.
 */
export function noteInfillModule(name: string, moduleUrl: string): void {
  const m = state.methods.get(name);
  if (!m) return;
  if (!state.origins.has(name)) state.origins.set(name, moduleUrl);
  if (m.mode === 'sync' && !state.workerModules.has(name)) state.workerModules.set(name, moduleUrl);
}

/** True for the methods of this folder as shipped (not replaced by a registration). */
export function isBuiltinInfill(name: string): boolean {
  return state.builtin.has(name);
}

/** The method registered under `name`, if any. */
export function getInfill(name: string): InfillMethod | undefined {
  return state.methods.get(name);
}

/** Every registered method, built-ins first, in registration order. */
export function listInfills(): InfillMethod[] {
  return [...state.methods.values()];
}

/** Module URLs of registered plugins (for worker threads). */
export function pluginModules(): string[] {
  return [...new Set(state.workerModules.values())];
}

/** The module URL of the plugin that registered `name`, or undefined for methods that ship with the pipeline. */
export function infillOrigin(name: string): string | undefined {
  return state.origins.get(name);
}

/** A copy of the registry's state (see restoreInfills). */
export interface InfillSnapshot {
  readonly state: RegistryState;
}

/** Copy the registry, so a registration can be undone (a refused plugin, a test). */
export function snapshotInfills(): InfillSnapshot {
  return { state: { methods: new Map(state.methods), workerModules: new Map(state.workerModules), origins: new Map(state.origins), builtin: new Set(state.builtin) } };
}

/** Put the registry back as it was when `snap` was taken. */
export function restoreInfills(snap: InfillSnapshot): void {
  for (const k of ['methods', 'workerModules', 'origins'] as const) {
    state[k].clear();
    for (const [name, v] of snap.state[k]) (state[k] as Map<string, unknown>).set(name, v);
  }
  state.builtin.clear();
  for (const n of snap.state.builtin) state.builtin.add(n);
}
