import { resolve, sep } from 'node:path';
import { sha256Hex } from '../../manifests/io.ts';
import type { ImageFormat } from '../decode.ts';

/**
 * Where a generated image goes inside its corpus folder. Source ids may hold any character (Waterbirds ids are
 * "001.Black_footed_Albatross/…"), so the name is a sanitised id plus 8 hex of its SHA-256 (sanitising could
 * merge two ids), under a 2-hex fan-out folder so no folder gets 100k files.
 */
export function imageRelPath(sourceId: string, variant: number, format: ImageFormat): string {
  const h = sha256Hex(sourceId);
  const safe = sourceId.replace(/[^A-Za-z0-9._-]+/g, '_').replace(/^[._]+/, '').slice(0, 80) || 'img';
  return `images/${h.slice(0, 2)}/${safe}_${h.slice(0, 8)}_v${variant}.${format}`;
}

/**
 * Error messages end up in the manifest; absolute paths would make its bytes depend on where the dataset lives.
 * Paths under the dataset root are shown relative to it.
 */
export function relativeToRoot(message: string, root: string): string {
  const abs = resolve(root) + sep;
  return message.split(abs).join('');
}
