import sharp from 'sharp';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';

/**
 * Foreground objects: Noto emoji (Apache-2.0) from @iconify-json/noto, rendered with sharp to RGBA.
 * The object mask is alpha >= 128, and compositing is binary on the same threshold, so the mask is exactly the
 * object's pixels.
 */
export interface Sprite {
  name: string;
  width: number;
  height: number;
  /** RGBA, row-major */
  rgba: Uint8Array;
}

export const ALPHA_OBJECT_THRESHOLD = 128;

interface IconSet {
  width?: number;
  height?: number;
  icons: Record<string, { body: string; width?: number; height?: number }>;
}

let iconSet: IconSet | null = null;
function icons(): IconSet {
  if (!iconSet) {
    const file = createRequire(import.meta.url).resolve('@iconify-json/noto/icons.json');
    iconSet = JSON.parse(readFileSync(file, 'utf8')) as IconSet;
  }
  return iconSet;
}

export function hasEmoji(name: string): boolean {
  return name in icons().icons;
}

/** The emoji as a standalone SVG document, scaled to `side` pixels (aspect kept, centred). */
export function emojiSvg(name: string, side: number): string {
  const set = icons();
  const icon = set.icons[name];
  if (!icon) throw new Error(`emoji "${name}" is not in @iconify-json/noto`);
  const w = icon.width ?? set.width ?? 16, h = icon.height ?? set.height ?? 16;
  return `<svg xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink" width="${side}" height="${side}" viewBox="0 0 ${w} ${h}">${icon.body}</svg>`;
}

const cache = new Map<string, Promise<Sprite>>();

/** Render (memoised per run) the emoji at `side`×`side` RGBA. */
export function renderSprite(name: string, side: number): Promise<Sprite> {
  const key = `${name}@${side}`;
  let p = cache.get(key);
  if (!p) {
    p = (async () => {
      const { data, info } = await sharp(Buffer.from(emojiSvg(name, side))).ensureAlpha().raw().toBuffer({ resolveWithObject: true });
      if (info.channels !== 4) throw new Error(`sprite ${name}: expected RGBA, got ${info.channels} channels`);
      return { name, width: info.width, height: info.height, rgba: new Uint8Array(data.buffer, data.byteOffset, data.length) };
    })();
    cache.set(key, p);
  }
  return p;
}
