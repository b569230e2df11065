import { access } from 'node:fs/promises';
import { isAbsolute, resolve } from 'node:path';
import { PROJECT_ROOT, datasetRootOf, defaultCaganCard, recordedDatasetRoot } from '../../common/paths.ts';
import { UserError } from '../../manifests/errors.ts';
import { registerInfill, type BatchInfill, type InfillResult, type Params } from '../infills/index.ts';
import { checkKeys, enumParam, intParam } from '../infills/params.ts';
import { sha256File } from '../../common/file-hash.ts';
import { cardModelPath, readCard } from './card.ts';
import { OnnxInpainter, type InpaintDevice } from './runner.ts';

/**
 * `cf-cagan`: the ONNX inpainter as a batched CF infill (box hole). The model comes from a card; by default ours
 * (`make inpainter` writes models/cagan.onnx + models/cagan.card.json). Importing this module registers it, so
 * `generate --plugin pipeline/inpaint/infill.ts` works as well as a static import.
 */

/**
 * The default `card` param: cagan.card.json in the models root (CFGEN_MODELS_ROOT, else <project>/models), read at
 * call time. It is recorded in the corpus config, hence hashed into the corpus id, so it is written project-relative
 * ("models/cagan.card.json", the id it always had) and never as this clone's absolute path.
 */
export function caganDefaultCard(env: NodeJS.ProcessEnv = process.env): string {
  return recordedDatasetRoot(defaultCaganCard(env));
}

/**
 * A user's `card` param as recorded in the corpus config. Run from the project folder (or given absolute) it is kept
 * exactly as typed, as it always was (same corpus ids); run from elsewhere, a relative path is taken from the current
 * folder like any path argument and recorded project-relative or absolute, so that `caganCardFile` finds it.
 */
function recordedCard(given: string): string {
  if (isAbsolute(given)) return given;
  const abs = resolve(given);
  return abs === resolve(PROJECT_ROOT, given) ? given : recordedDatasetRoot(abs);
}

/** The card file a recorded `card` param names: relative ones are relative to the project, not the current folder. */
export function caganCardFile(card: string): string {
  return datasetRootOf(card);
}
const DEVICES = ['cpu', 'cuda'] as const;

/** Images per session.run inside one applyBatch call; applyBatch gets several of these so resizing overlaps runs. */
const RUNNER_BATCH = 8;

/** The cf-cagan infill: a fresh instance with its own cache of open model sessions. */
export function caganInfill(): BatchInfill {
  const sessions = new Map<string, Promise<OnnxInpainter>>();
  const keyOf = (p: Params) => `${p.card}\u0000${p.device}\u0000${p.batch}`;
  const open = (p: Params): Promise<OnnxInpainter> => {
    const key = keyOf(p);
    let s = sessions.get(key);
    if (!s) {
      s = OnnxInpainter.load(caganCardFile(String(p.card)), { device: p.device as InpaintDevice, batchSize: Number(p.batch) });
      sessions.set(key, s);
      s.catch(() => sessions.delete(key)); // a failed load is retried (and re-reported) next time
    }
    return s;
  };

  return {
    name: 'cf-cagan', method: 'cagan', kind: 'cf', maskKind: 'box', mode: 'batch', deterministic: true,
    // getters: the default card follows CFGEN_MODELS_ROOT as it is when asked, not when this module was loaded
    get description() { return `box hole inpainted by an ONNX model described by a model card (default ${caganDefaultCard()}; docs/inpainting.md)`; },
    get defaults() { return { card: caganDefaultCard(), device: 'cpu', batch: RUNNER_BATCH }; },
    batchSize: RUNNER_BATCH * 4,
    parseParams(raw: Params): Params {
      checkKeys('cf-cagan', raw, ['card', 'device', 'batch']);
      const card = raw.card ?? caganDefaultCard();
      if (typeof card !== 'string' || !card.endsWith('.card.json')) throw new Error(`cf-cagan: card must be a path to a <name>.card.json, got ${JSON.stringify(card)}`);
      return {
        card: raw.card === undefined ? card : recordedCard(card),
        device: enumParam('cf-cagan', 'device', raw.device ?? 'cpu', DEVICES),
        batch: intParam('cf-cagan', 'batch', raw.batch ?? RUNNER_BATCH, 1, 1024),
      };
    },
    /** Loads the card and the model and checks one against the other, so a bad card stops the run before any write. */
    async unavailableReason(p: Params): Promise<string | null> {
      const file = caganCardFile(String(p.card));
      try {
        await access(file);
      } catch {
        return `no model card at ${file}; run \`make inpainter\` to train ours (a few minutes on CPU), or write a card for your own model (docs/inpainting.md)`;
      }
      try {
        await open(p);
        return null;
      } catch (e) {
        if (e instanceof UserError) return e.message;
        throw e;
      }
    },
    /**
     * The card and the ONNX file it names, by content: neither is in the params (the card param is a path), and
     * `make inpainter` rewrites both in place, so without these a resume would keep the old model's shards and
     * write the new model's beside them under one corpus id.
     */
    async fileHashes(p: Params): Promise<Record<string, string>> {
      const cardFile = caganCardFile(String(p.card));
      const card = await readCard(cardFile);
      const [cardHash, modelHash] = await Promise.all([sha256File(cardFile), sha256File(cardModelPath(cardFile, card))]);
      return { card: cardHash, model: modelHash };
    },
    async applyBatch(items, p): Promise<InfillResult[]> {
      const runner = await open(p);
      const out = await runner.inpaint(items.map((i) => i.image), items.map((i) => i.region));
      return out.map((image) => ({ status: 'ok', image }));
    },
    async close(): Promise<void> {
      const all = [...sessions.values()];
      sessions.clear();
      await Promise.all(all.map(async (s) => (await s.catch(() => null))?.close()));
    },
  };
}

/** Register cf-cagan in the infill registry; importing this module does it once. */
export function registerCaganInfill(): void {
  registerInfill(caganInfill());
}

registerCaganInfill();
