import sharp from 'sharp';
import { readFile } from 'node:fs/promises';
import type { RGBImage } from '../manifests/pixels.ts';

/**
 * Image decode/encode at the pipeline's edge: files in, 8-bit RGB HWC out, and back.
 *
 * Decoding follows what a PyTorch loader's PIL `.convert('RGB')` gives, so corpus images line up with the originals
 * the trainer reads: the format is sniffed from the bytes (a GIF named .jpg decodes as a GIF, first frame),
 * alpha is dropped (not composited), grey is replicated to 3 channels, CMYK is converted to sRGB, 16-bit is scaled
 * to 8 bit, and EXIF orientation is NOT applied (masks and boxes are in stored-pixel coordinates).
 * Truncated or corrupt files fail (`failOn: 'warning'`) instead of decoding to a half-grey image.
 */

export class DecodeError extends Error {
  constructor(readonly file: string, why: string) {
    super(`${file}: cannot decode image (${why})`);
    this.name = 'DecodeError';
  }
}

/**
 * The most pixels (width × height) an image may have before we decode it: 40 megapixels. sharp's own limit
 * (0x3FFF², 268 MP) lets a 16000×16000 PNG through, which takes about 1.9 GB for one row, with several rows in
 * flight per worker. `--max-pixels` raises it (dataset and generate).
 */
export const DEFAULT_MAX_PIXELS = 40_000_000;

/** "image is 16000x16000 (256.0 megapixels), over the limit of 40.0 megapixels; …the flag that raises it". */
export function pixelLimitReason(width: number, height: number, limit: number): string {
  const mp = (n: number) => (n >= 100_000 ? `${(n / 1e6).toFixed(1)} megapixels` : `${n} pixels`);
  return `image is ${width}x${height} (${mp(width * height)}), over the limit of ${mp(limit)}; pass --max-pixels ${width * height} (or more) to process it`;
}

/** An image over the pixel limit, found from its header before any decode. */
export class PixelLimitError extends Error {
  constructor(readonly file: string, readonly width: number, readonly height: number, readonly limit: number) {
    super(`${file}: ${pixelLimitReason(width, height, limit)}`);
    this.name = 'PixelLimitError';
  }
}

/**
 * Read errors that say nothing about the file itself (the process or machine is out of file handles or memory):
 * they stop the run instead of becoming a row's `error`, which a resume would keep.
 */
export const TRANSIENT_CODES: ReadonlySet<string> = new Set(['EMFILE', 'ENFILE', 'ENOMEM']);

/** Decode options. */
export interface DecodeOptions {
  /** refuse (PixelLimitError) images with more pixels than this, from the header; default DEFAULT_MAX_PIXELS */
  maxPixels?: number;
}

export interface Decoded {
  image: RGBImage;
  /** size of the stored image before any resize (what the manifest's width/height and boxes refer to) */
  storedWidth: number;
  storedHeight: number;
}

/** Decode `file` to RGB, resized to `size` (width × height, aspect not kept) when given. */
export async function decodeImageFile(file: string, size?: { width: number; height: number }, opts: DecodeOptions = {}): Promise<Decoded> {
  let bytes: Buffer;
  try {
    bytes = await readFile(file);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    // out of file handles is this machine's state, not the image's: an error row would be kept on resume forever
    if (code && TRANSIENT_CODES.has(code)) throw e;
    throw new DecodeError(file, code === 'ENOENT' ? 'file not found' : (e as Error).message);
  }
  return decodeImageBytes(bytes, file, size, opts);
}

/** Decode image bytes (read from `file`, named in errors); see decodeImageFile. */
export async function decodeImageBytes(bytes: Buffer, file: string, size?: { width: number; height: number }, opts: DecodeOptions = {}): Promise<Decoded> {
  if (bytes.length === 0) throw new DecodeError(file, 'empty file (0 bytes)');
  const limit = opts.maxPixels ?? DEFAULT_MAX_PIXELS;
  try {
    // sharp checks the limit from the header, before it allocates the pixels
    let pipe = sharp(bytes, { failOn: 'warning', limitInputPixels: limit });
    // the header read costs a sharp call of its own, so it is only made when a resize hides the stored size
    let stored: { width: number; height: number } | null = null;
    if (size) {
      const meta = await pipe.metadata();
      if (!meta.width || !meta.height) throw new Error('no image size in the header');
      stored = { width: meta.width, height: meta.height };
      if (size.width !== meta.width || size.height !== meta.height) pipe = pipe.resize(size.width, size.height, { fit: 'fill' });
    }
    const { data, info } = await pipe.removeAlpha().toColourspace('srgb').raw({ depth: 'uchar' }).toBuffer({ resolveWithObject: true });
    if (info.channels !== 3) throw new Error(`decoded to ${info.channels} channels, expected 3`);
    return {
      image: { width: info.width, height: info.height, data: new Uint8Array(data.buffer, data.byteOffset, data.length) },
      storedWidth: stored?.width ?? info.width,
      storedHeight: stored?.height ?? info.height,
    };
  } catch (e) {
    if (e instanceof DecodeError) throw e;
    if (/exceeds pixel limit/i.test((e as Error).message)) {
      const m = await sharp(bytes, { limitInputPixels: false }).metadata().catch(() => null);
      if (m?.width && m.height) throw new PixelLimitError(file, m.width, m.height, limit);
    }
    throw new DecodeError(file, (e as Error).message.split('\n')[0]);
  }
}

export type ImageFormat = 'png' | 'jpg';

/** PNG: zlib level 6 (sharp's default), lossless. JPEG: quality 95, no chroma subsampling. Same input, same bytes. */
export async function encodeImage(img: RGBImage, format: ImageFormat): Promise<Buffer> {
  const s = sharp(img.data, { raw: { width: img.width, height: img.height, channels: 3 } });
  return format === 'png'
    ? s.png({ compressionLevel: 6 }).toBuffer()
    : s.jpeg({ quality: 95, chromaSubsampling: '4:4:4' }).toBuffer();
}
