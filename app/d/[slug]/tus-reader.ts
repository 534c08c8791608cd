/**
 * A tus-js-client file reader that serves ciphertext from the encryption worker instead of the
 * picked file. tus asks for [start, end) of the upload; the worker encrypts exactly that range.
 */
import type { UploadOptions } from 'tus-js-client';
import type { ChunkTag } from './worker-protocol';
import type { EncryptWorker } from './worker-client';

type TusFileReader = NonNullable<UploadOptions['fileReader']>;

export function encryptedFileReader(options: {
  worker: EncryptWorker;
  fileId: string;
  totalLength: number;
  /** Must have stored the tags when it resolves: only then may their ciphertext leave the page. */
  keepTags: (tags: ChunkTag[]) => Promise<void>;
}): TusFileReader {
  const { worker, fileId, totalLength, keepTags } = options;
  return {
    async openFile() {
      return {
        size: totalLength,
        async slice(start: number, end: number) {
          const stop = Math.min(end, totalLength);
          const { bytes, tags } = await worker.call('range', { fileId, start, end: stop });
          if (tags.length) await keepTags(tags);
          // tus-js-client measures `value.size`: it must be a Blob, not a typed array (TESTING.md).
          return { value: new Blob([bytes]), done: stop >= totalLength };
        },
        close() {},
      };
    },
  };
}
