import { readCard, type ModelCard } from '../../common/model-card.ts';
import { datasetSlug } from '../../common/paths.ts';
import { openManifest } from '../../manifests/reader.ts';
import { getInfill, type Params } from '../infills/index.ts';
import { resolveMethods } from '../generate/index.ts';
import { caganCardFile } from './infill.ts';

/**
 * What `generate` says about the cf-cagan model before it runs: which model, and where it comes from (the card's
 * provenance), and a warning when the card says the model was trained on another dataset than the one being
 * generated. An inpainter trained on synthetic birds fills real photographs with synthetic texture, a
 * counterfactual the classifier learns to spot, so this must never go unnoticed.
 */

/** The dataset a provenance text says the model was trained on ("… trained on <name> …"), or null when it says none. */
export function trainedOn(provenance: string): string | null {
  const m = /\btrained on (?:the )?([A-Za-z0-9][\w.:/-]*)/i.exec(provenance);
  return m ? m[1].replace(/[.,;:]+$/, '') : null;
}

/** The lines to print for a card used on `dataset`: an info line, and a warning when the datasets differ. */
export function provenanceLines(card: ModelCard, cardFile: string, dataset: string): { info: string; warning: string | null } {
  const info = `cf-cagan: model "${card.name}" (${cardFile}); provenance: ${card.provenance}`;
  const on = trainedOn(card.provenance);
  if (on === null) {
    return { info, warning: `cf-cagan: the model card does not say which dataset the model was trained on ("trained on <dataset>" in its provenance); check that it suits ${dataset}` };
  }
  if (on.toLowerCase() !== dataset.toLowerCase()) {
    return { info, warning: `cf-cagan: the model was trained on ${on}, not on ${dataset}: its inpaintings may not look like ${dataset}'s backgrounds (train one on it with \`make inpainter DATASET=${dataset}\`, or pass --param cf-cagan.card=<card of a model trained on it>)` };
  }
  return { info, warning: null };
}

/**
 * When `methods` (the resolved list) holds cf-cagan, read its card and write the provenance (and any warning) to
 * `log`. A card that cannot be read is left to the run's own check, which reports it with the fix.
 */
export async function reportCaganProvenance(methods: readonly string[], params: Record<string, Params>, dataset: string, log: (line: string) => void): Promise<void> {
  if (!methods.includes('cf-cagan')) return;
  const m = getInfill('cf-cagan');
  if (!m) return;
  let file: string, card: ModelCard;
  try {
    file = caganCardFile(String(m.parseParams(params['cf-cagan'] ?? {}).card));
    card = await readCard(file);
  } catch {
    return;
  }
  const { info, warning } = provenanceLines(card, file, dataset);
  log(info);
  if (warning) log(`warning: ${warning}`);
}

/**
 * `generate`'s call: the methods as the run will resolve them (the defaults include cf-cagan when its model is
 * there) and the dataset's name as its source manifest records it (`--source`) or as `--dataset` names it.
 */
export async function reportCaganProvenanceFor(
  o: { methods?: string[]; params: Record<string, Params>; dataset: string; source?: string }, log: (line: string) => void,
): Promise<void> {
  let names: string[];
  try {
    names = o.methods ?? (await resolveMethods(undefined)).map((m) => m.name);
  } catch {
    return; // an unknown method name: the run reports it with the fix
  }
  if (!names.includes('cf-cagan')) return;
  let dataset: string;
  if (o.source) {
    try { dataset = (await openManifest(o.source, { prefix: 'source' })).metadata.dataset; } catch { return; }
  } else {
    dataset = datasetSlug(o.dataset);
  }
  await reportCaganProvenance(names, o.params, dataset, log);
}
