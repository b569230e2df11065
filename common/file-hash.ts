import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';

/**
 * SHA-256 of a file's bytes, streamed (ONNX models run to hundreds of MB). Used to pin the content of files that
 * decide a corpus's bytes but are not part of its parameters: model weights, model cards, plugin sources.
 * Rejects with the fs error (ENOENT, EACCES, ...) when the file cannot be read.
 */
export function sha256File(file: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const h = createHash('sha256');
    createReadStream(file)
      .on('data', (chunk) => h.update(chunk))
      .on('error', reject)
      .on('end', () => resolve(h.digest('hex')));
  });
}
