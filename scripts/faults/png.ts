/**
 * A minimal PNG encoder (8-bit RGB or grey, no interlace) for writing many tiny test images fast: sharp costs a
 * round trip through libuv per image, this is one deflateSync. The decoder side is sharp's, as everywhere else.
 */
import { deflateSync } from 'node:zlib';

const CRC_TABLE = (() => {
  const t = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    t[n] = c >>> 0;
  }
  return t;
})();

function crc32(bufs: Buffer[]): number {
  let c = 0xffffffff;
  for (const b of bufs) for (let i = 0; i < b.length; i++) c = CRC_TABLE[(c ^ b[i]) & 0xff] ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

function chunk(type: string, data: Buffer): Buffer {
  const len = Buffer.alloc(4);
  len.writeUInt32BE(data.length);
  const t = Buffer.from(type, 'latin1');
  const crc = Buffer.alloc(4);
  crc.writeUInt32BE(crc32([t, data]));
  return Buffer.concat([len, t, data, crc]);
}

const SIGNATURE = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);

/** PNG bytes of `pixels` (row-major, `channels` bytes per pixel: 1 grey, 3 RGB). */
export function encodePng(width: number, height: number, pixels: Uint8Array, channels: 1 | 3 = 3): Buffer {
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(width, 0);
  ihdr.writeUInt32BE(height, 4);
  ihdr[8] = 8;
  ihdr[9] = channels === 3 ? 2 : 0;
  const stride = width * channels;
  const raw = Buffer.alloc((stride + 1) * height);
  for (let y = 0; y < height; y++) {
    raw[y * (stride + 1)] = 0; // filter: none
    raw.set(pixels.subarray(y * stride, (y + 1) * stride), y * (stride + 1) + 1);
  }
  return Buffer.concat([SIGNATURE, chunk('IHDR', ihdr), chunk('IDAT', deflateSync(raw, { level: 1 })), chunk('IEND', Buffer.alloc(0))]);
}

/**
 * A side×side image of class `label` (0 reddish, 1 bluish background) with a green square object at a position
 * drawn from `r`; returns the bytes and the object's box [x, y, w, h].
 */
export function tinyImage(side: number, label: number, r: () => number): { png: Buffer; box: [number, number, number, number] } {
  const s = Math.max(3, Math.round(side * 0.4));
  const bx = Math.floor(r() * (side - s + 1)), by = Math.floor(r() * (side - s + 1));
  const px = new Uint8Array(side * side * 3);
  for (let y = 0; y < side; y++) {
    for (let x = 0; x < side; x++) {
      const o = (y * side + x) * 3;
      const n = Math.floor(r() * 40);
      if (x >= bx && x < bx + s && y >= by && y < by + s) px.set([30 + n, 200 + n, 30 + n], o);
      else px.set(label === 0 ? [180 + n, 20 + n, 20 + n] : [20 + n, 20 + n, 180 + n], o);
    }
  }
  return { png: encodePng(side, side, px), box: [bx, by, s, s] };
}

/** The side×side mask of a box (255 inside), as a grey PNG. */
export function boxMask(side: number, box: [number, number, number, number]): Buffer {
  const px = new Uint8Array(side * side);
  const [bx, by, w, h] = box;
  for (let y = by; y < by + h; y++) for (let x = bx; x < bx + w; x++) px[y * side + x] = 255;
  return encodePng(side, side, px, 1);
}
