import { access } from 'node:fs/promises';
import { UserError } from '../../manifests/errors.ts';
import { registerInfill, type BatchInfill, type InfillResult, type Params } from '../infills/index.ts';
import { checkKeys, enumParam, intParam } from '../infills/params.ts';
import { OnnxInpainter, type InpaintDevice } from './runner.ts';

/**
 * `cf-cagan`: the ONNX inpainter as a batched CF infill (box hole). The model comes from a card; by default ours
 * (`make inpainter` writes models/cagan.onnx + models/cagan.card.json). Importing this module registers it, so
 * `generate --plugin pipeline/inpaint/infill.ts` works as well as a static import.
 */
export const CAGAN_DEFAULT_CARD = 'models/cagan.card.json';
const DEVICES = ['cpu', 'cuda'] as const;

/** Images per session.run inside one applyBatch call; applyBatch gets several of these so resizing overlaps runs. */
const RUNNER_BATCH = 8;

export function caganInfill(): BatchInfill {
  const sessions = new Map<string, Promise<OnnxInpainter>>();
  const keyOf = (p: Params) => `${p.card}\u0000${p.device}\u0000${p.batch}`;
  const open = (p: Params): Promise<OnnxInpainter> => {
    const key = keyOf(p);
    let s = sessions.get(key);
    if (!s) {
      s = OnnxInpainter.load(String(p.card), { device: p.device as InpaintDevice, batchSize: Number(p.batch) });
      sessions.set(key, s);
      s.catch(() => sessions.delete(key)); // a failed load is retried (and re-reported) next time
    }
    return s;
  };

  return {
    name: 'cf-cagan', method: 'cagan', kind: 'cf', maskKind: 'box', mode: 'batch', deterministic: true,
    description: `box hole inpainted by an ONNX model described by a model card (default ${CAGAN_DEFAULT_CARD}; README.md, "CF(CAGAN)")`,
    defaults: { card: CAGAN_DEFAULT_CARD, device: 'cpu', batch: RUNNER_BATCH },
    batchSize: RUNNER_BATCH * 4,
    parseParams(raw: Params): Params {
      checkKeys('cf-cagan', raw, ['card', 'device', 'batch']);
      const card = raw.card ?? CAGAN_DEFAULT_CARD;
      if (typeof card !== 'string' || !card.endsWith('.card.json')) throw new Error(`cf-cagan: card must be a path to a <name>.card.json, got ${JSON.stringify(card)}`);
      return {
        card,
        device: enumParam('cf-cagan', 'device', raw.device ?? 'cpu', DEVICES),
        batch: intParam('cf-cagan', 'batch', raw.batch ?? RUNNER_BATCH, 1, 1024),
      };
    },
    /** Loads the card and the model and checks one against the other, so a bad card stops the run before any write. */
    async unavailableReason(p: Params): Promise<string | null> {
      try {
        await access(String(p.card));
      } catch {
        return `no model card at ${p.card}; run \`make inpainter\` to train ours (a few minutes on CPU), or write a card for your own model (README.md, "CF(CAGAN)")`;
      }
      try {
        await open(p);
        return null;
      } catch (e) {
        if (e instanceof UserError) return e.message;
        throw e;
      }
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

export function registerCaganInfill(): void {
  registerInfill(caganInfill());
}

registerCaganInfill();
