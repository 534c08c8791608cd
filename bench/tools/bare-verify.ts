/**
 * The bare verifier: the least work any verification of a stored object must do, as a yardstick
 * for the verify pass. Every ciphertext byte is read as the raw GET reads it, decrypted with
 * AES-256-GCM (node:crypto, a new decipher per 4 MiB as the format's chunks need) and hashed
 * with SHA-256. Nothing else: no header parsing, no framing, no tag checks (a tag is one GHASH
 * block per chunk), a random key (the cost is the same), so the digest means nothing.
 *
 * Two forms, because one thread is not all a machine offers: everything in the caller's thread,
 * or the reading there and the decryption and hashing on a worker thread, the read buffers
 * handed over without a copy.
 */
import { randomBytes } from 'node:crypto';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';

const CHUNK = 4 * 2 ** 20;
/** Batches handed to the worker (about 1 MiB each) and how many may wait there: bounded memory. */
const BATCH = 2 ** 20;
const IN_FLIGHT = 4;

const key = randomBytes(32);
const nonce = randomBytes(12);

const workerFile = new URL('./bare-verify-worker.cjs', import.meta.url);
/** bare-verify-worker.cjs, typed; chunkedGcm is the encrypting relay's too (bench/tools/client.ts). */
const cryptography = createRequire(import.meta.url)(fileURLToPath(workerFile)) as {
  chunkedGcm(decrypt: boolean, key: Uint8Array, nonce: Uint8Array, chunk: number): (piece: Uint8Array, emit: (out: Buffer) => void) => void;
  decryptAndHash(key: Uint8Array, nonce: Uint8Array, chunk: number): { update(piece: Uint8Array): void; digest(): Buffer };
};
export const { chunkedGcm } = cryptography;
const { decryptAndHash } = cryptography;

export type BareThreads = 1 | 2;

/** Reads `body` to its end, decrypting and hashing every byte; returns the bytes read. */
export async function bareVerify(body: AsyncIterable<Uint8Array>, threads: BareThreads): Promise<number> {
  return threads === 1 ? oneThread(body) : withWorker(body);
}

async function oneThread(body: AsyncIterable<Uint8Array>): Promise<number> {
  const state = decryptAndHash(key, nonce, CHUNK);
  let bytes = 0;
  for await (const piece of body) {
    state.update(piece);
    bytes += piece.byteLength;
  }
  state.digest();
  return bytes;
}

async function withWorker(body: AsyncIterable<Uint8Array>): Promise<number> {
  const worker = new Worker(workerFile, { workerData: { key, nonce, chunk: CHUNK } });
  let free = IN_FLIGHT;
  let wake: (() => void) | undefined;
  let failed: Error | undefined;
  worker.on('error', (e) => {
    failed = e;
    wake?.();
  });
  let digested!: () => void;
  const digest = new Promise<void>((resolve, reject) => {
    digested = resolve;
    worker.once('error', reject);
  });
  digest.catch(() => {}); // a failure before the end is thrown by send()
  // 'done' frees a batch's place; anything else is the digest, the answer to 'end'.
  worker.on('message', (m: 'done' | Uint8Array) => {
    if (m !== 'done') return digested();
    free++;
    wake?.();
  });
  try {
    let batch: Uint8Array[] = [];
    let batchBytes = 0;
    let bytes = 0;
    const send = async () => {
      while (!free && !failed) await new Promise<void>((r) => (wake = r));
      if (failed) throw failed;
      free--;
      // A view on part of a larger buffer cannot be handed over alone: copy it (rare).
      const own = batch.map((p) => (p.byteOffset === 0 && p.byteLength === p.buffer.byteLength ? p : new Uint8Array(p)));
      worker.postMessage(own, own.map((p) => p.buffer as ArrayBuffer));
      batch = [];
      batchBytes = 0;
    };
    for await (const piece of body) {
      batch.push(piece);
      batchBytes += piece.byteLength;
      bytes += piece.byteLength;
      if (batchBytes >= BATCH) await send();
    }
    if (batch.length) await send();
    worker.postMessage('end');
    await digest;
    return bytes;
  } finally {
    await worker.terminate();
  }
}
