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
  /** Decides (and gives tus) the size of the PATCH after the one about to go. */
  nextChunkSize?: () => number;
}): TusFileReader {
  const { worker, fileId, totalLength, keepTags } = options;
  // tus asks for one range at a time and PATCHes it before asking for the next: the worker
  // encrypts the next range while the current one uploads; its size is fixed here, so tus then
  // asks for exactly it. Tags are stored as soon as a range is encrypted (a prefetch tus never
  // asks for included), always before its bytes are handed out.
  type Range = { start: number; stop: number; bytes: Promise<ArrayBuffer> };
  let ahead: Range | undefined;
  const encrypt = (start: number, stop: number, after: Promise<unknown> = Promise.resolve()): Range => {
    const bytes = after
      .then(() => worker.call('range', { fileId, start, end: stop }))
      .then(async ({ bytes, tags }) => {
        if (tags.length) await keepTags(tags);
        return bytes;
      });
    bytes.catch(() => {}); // a prefetch nobody asks for must not be an unhandled rejection
    return { start, stop, bytes };
  };
  return {
    async openFile() {
      return {
        size: totalLength,
        async slice(start: number, end: number) {
          const stop = Math.min(end, totalLength);
          const current = ahead?.start === start && ahead.stop === stop ? ahead : encrypt(start, stop, ahead?.bytes.catch(() => {}));
          const size = options.nextChunkSize?.() ?? stop - start;
          ahead = stop < totalLength ? encrypt(stop, Math.min(stop + size, totalLength), current.bytes.catch(() => {})) : undefined;
          const bytes = await current.bytes;
          // tus-js-client measures `value.size`: it must be a Blob, not a typed array (TESTING.md).
          return { value: new Blob([bytes]), done: stop >= totalLength };
        },
        close() {},
      };
    },
  };
}
