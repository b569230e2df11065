/**
 * Pixel types shared by every pipeline stage. Plain typed arrays, so infills stay pure functions
 * that can be tested on hand-made 4×4 images and moved to worker threads without copies.
 */

/** 8-bit RGB, row-major HWC: data[(y * width + x) * 3 + c]. */
export interface RGBImage {
  width: number;
  height: number;
  data: Uint8Array;
}

/** Binary mask, row-major: data[y * width + x] is 1 on the object (causal region), 0 on background. */
export interface Mask {
  width: number;
  height: number;
  data: Uint8Array;
}

/** Axis-aligned box in pixels: [x, y) to [x + w, y + h). */
export interface Box {
  x: number;
  y: number;
  w: number;
  h: number;
}

export function newImage(width: number, height: number): RGBImage {
  return { width, height, data: new Uint8Array(width * height * 3) };
}

export function newMask(width: number, height: number): Mask {
  return { width, height, data: new Uint8Array(width * height) };
}

export function cloneImage(img: RGBImage): RGBImage {
  return { width: img.width, height: img.height, data: img.data.slice() };
}
