/**
 * How much one tus PATCH carries. Every PATCH costs a pause: the server finishes the S3 parts it
 * spooled before it answers, and the next PATCH starts with few parts in flight. So a PATCH should
 * be large, but finish well inside `next start`'s 300 s request limit on the sender's link. The
 * size adapts to the speed just measured (about a minute's worth), in whole 8 MiB S3 parts so that
 * no short trailing `.part` object is written and read back between PATCHes.
 */
const MiB = 1024 * 1024;
/** lib/storage/s3.ts PART_SIZE. */
export const PART_BYTES = 8 * MiB;
export const FIRST_CHUNK_BYTES = 48 * MiB;
/** For a sender that holds a PATCH's ciphertext in memory (the page's worker hands over ranges). */
export const MAX_CHUNK_BYTES = 256 * MiB;
/** For a sender that streams each PATCH (the Node client): only the request time limit bounds it. */
export const MAX_STREAMED_CHUNK_BYTES = 2048 * MiB;
const TARGET_SECONDS = 60;

/** The next PATCH size after one of `bytes` took `seconds`. */
export function nextChunkSize(bytes: number, seconds: number, max = MAX_CHUNK_BYTES): number {
  if (!(bytes > 0) || !(seconds > 0)) return FIRST_CHUNK_BYTES;
  const want = (bytes / seconds) * TARGET_SECONDS;
  return Math.max(PART_BYTES, Math.min(max, Math.floor(want / PART_BYTES) * PART_BYTES));
}

/**
 * The PATCH sizes of one upload: `completed` after each PATCH the server accepted, `next` when
 * the size of a later PATCH is to be decided (the page's reader decides the one after the one
 * about to go, which it prefetches; a streaming sender the very next one).
 */
export function chunkPacer(max = MAX_CHUNK_BYTES, now: () => number = () => performance.now()) {
  let started = now();
  let last = { bytes: 0, seconds: 0 };
  return {
    completed(bytes: number): void {
      const t = now();
      last = { bytes, seconds: (t - started) / 1000 };
      started = t;
    },
    next: (): number => nextChunkSize(last.bytes, last.seconds, max),
  };
}
