import type * as tf from '@tensorflow/tfjs-core';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { UserError } from '../../manifests/errors.ts';

/**
 * A tfjs model folder on disk (`model.json` + `group*-shard*of*.bin`, what tensorflowjs_converter writes) as a tfjs
 * IOHandler. tfjs's own `file://` handler lives in @tensorflow/tfjs-node, which we do not require.
 */

interface ManifestGroup { paths: string[]; weights: tf.io.WeightsManifestEntry[] }

/** Load handler for `dir/model.json` and its weight shards, concatenated in manifest order. */
export function folderLoader(dir: string): tf.io.IOHandler {
  return {
    load: async (): Promise<tf.io.ModelArtifacts> => {
      const file = join(dir, 'model.json');
      let json: { modelTopology?: object; weightsManifest?: ManifestGroup[]; format?: string; generatedBy?: string; convertedBy?: string | null };
      try {
        json = JSON.parse(await readFile(file, 'utf8'));
      } catch (e) {
        throw new UserError(`cannot read a tfjs model.json: ${(e as Error).message}`, { file, fix: 'point --backbone at a folder written by tensorflowjs_converter (model.json + group*-shard*.bin)' });
      }
      if (!json.modelTopology || !Array.isArray(json.weightsManifest)) {
        throw new UserError('model.json has no modelTopology/weightsManifest: not a tfjs LayersModel', {
          file, fix: 'convert with `tensorflowjs_converter --input_format keras model.h5 <dir>` (a graph model cannot be fine-tuned)',
        });
      }
      const parts: Buffer[] = [];
      for (const g of json.weightsManifest) {
        for (const p of g.paths) {
          try { parts.push(await readFile(join(dir, p))); } catch {
            throw new UserError(`weight shard ${p} listed in model.json cannot be read`, { file: join(dir, p), fix: 'copy every group*-shard*.bin next to model.json' });
          }
        }
      }
      const all = Buffer.concat(parts);
      return {
        modelTopology: json.modelTopology, weightSpecs: json.weightsManifest.flatMap((g) => g.weights),
        weightData: all.buffer.slice(all.byteOffset, all.byteOffset + all.byteLength) as ArrayBuffer,
        format: json.format, generatedBy: json.generatedBy, convertedBy: json.convertedBy ?? undefined,
      };
    },
  };
}

/** Save handler writing `dir/model.json` + `dir/group1-shard1of1.bin` (tests, and saving a built backbone). */
export function folderSaver(dir: string): tf.io.IOHandler {
  return {
    save: async (a: tf.io.ModelArtifacts): Promise<tf.io.SaveResult> => {
      await mkdir(dir, { recursive: true });
      const chunks = a.weightData === undefined ? [] : Array.isArray(a.weightData) ? a.weightData : [a.weightData];
      const bin = Buffer.concat(chunks.map((c) => Buffer.from(c)));
      await writeFile(join(dir, 'group1-shard1of1.bin'), bin);
      await writeFile(join(dir, 'model.json'), JSON.stringify({
        format: 'layers-model', generatedBy: a.generatedBy, convertedBy: a.convertedBy ?? null, modelTopology: a.modelTopology,
        weightsManifest: [{ paths: ['group1-shard1of1.bin'], weights: a.weightSpecs ?? [] }],
      }));
      return { modelArtifactsInfo: { dateSaved: new Date(), modelTopologyType: 'JSON', weightDataBytes: bin.length } };
    },
  };
}
