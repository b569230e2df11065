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

export interface Decoded {
  image: RGBImage;
  /** size of the stored image before any resize (what the manifest's width/height and boxes refer to) */
  storedWidth: number;
  storedHeight: number;
}

/** Decode `file` to RGB, resized to `size` (width × height, aspect not kept) when given. */
export async function decodeImageFile(file: string, size?: { width: number; height: number }): Promise<Decoded> {
  let bytes: Buffer;
  try {
    bytes = await readFile(file);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new DecodeError(file, code === 'ENOENT' ? 'file not found' : (e as Error).message);
  }
  return decodeImageBytes(bytes, file, size);
}

export async function decodeImageBytes(bytes: Buffer, file: string, size?: { width: number; height: number }): Promise<Decoded> {
  if (bytes.length === 0) throw new DecodeError(file, 'empty file (0 bytes)');
  try {
    let pipe = sharp(bytes, { failOn: 'warning' });
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
