/** Pixel types live in the contract (manifests/pixels.ts) so the trainer can share them. */
export * from '../manifests/pixels.ts';
