/**
 * Bundled by esbuild into a classic Web Worker for the browser benchmark (bench/lib/browser.ts):
 * the filedrop page's encoder (lib/crypto/encoder) on its own, without tus or the network.
 * Passes over the picked file, each timed:
 *   read     File.slice().arrayBuffer() in tus-sized ranges (what the page's worker reads)
 *   encrypt  AES-256-GCM of 4 MiB chunks from memory (WebCrypto alone, no file reads)
 *   encode   FileEncoder.range() in tus-sized ranges over the file (read + encrypt, as the page)
 *   sha256   hash-wasm over the file in 8 MiB steps (the page hashes beside the upload)
 */
import { createSHA256 } from 'hash-wasm';
import { FileEncoder, newFileEncryption } from '@/lib/crypto/encoder';

export interface EncoderBenchRequest {
  file: File;
  publicKeys: string[];
  rangeSize: number;
  rounds: number;
}

export interface EncoderBenchResult {
  fileSize: number;
  totalLength: number;
  readSeconds: number[];
  encryptSeconds: number[];
  encodeSeconds: number[];
  sha256Seconds: number;
}

const scope = self as unknown as DedicatedWorkerGlobalScope;

async function readFile(file: File, start: number, end: number): Promise<Uint8Array> {
  return new Uint8Array(await file.slice(start, end).arrayBuffer());
}

async function run({ file, publicKeys, rangeSize, rounds }: EncoderBenchRequest): Promise<EncoderBenchResult> {
  const encryption = await newFileEncryption({ publicKeys, name: file.name, fileSize: file.size });
  const pool = new Uint8Array(4 * 1024 * 1024 + 1024);
  for (let i = 0; i < pool.length; i += 65536) crypto.getRandomValues(pool.subarray(i, Math.min(pool.length, i + 65536)));
  const result: EncoderBenchResult = {
    fileSize: file.size,
    totalLength: 0,
    readSeconds: [],
    encryptSeconds: [],
    encodeSeconds: [],
    sha256Seconds: NaN,
  };
  for (let r = 0; r < rounds; r++) {
    let t0 = performance.now();
    for (let at = 0; at < file.size; at += rangeSize) await readFile(file, at, Math.min(file.size, at + rangeSize));
    result.readSeconds.push((performance.now() - t0) / 1000);

    // The same layout and key, fed from memory: what WebCrypto alone costs.
    const fromMemory = new FileEncoder({ ...encryption, readPlain: async (s, e) => pool.subarray(0, e - s) });
    t0 = performance.now();
    for (let at = 0; at < fromMemory.totalLength; at += rangeSize) await fromMemory.range(at, Math.min(fromMemory.totalLength, at + rangeSize));
    result.encryptSeconds.push((performance.now() - t0) / 1000);

    const encoder = new FileEncoder({ ...encryption, readPlain: (s, e) => readFile(file, s, e) });
    result.totalLength = encoder.totalLength;
    t0 = performance.now();
    for (let at = 0; at < encoder.totalLength; at += rangeSize) await encoder.range(at, Math.min(encoder.totalLength, at + rangeSize));
    result.encodeSeconds.push((performance.now() - t0) / 1000);
  }
  const hash = await createSHA256();
  hash.init();
  const t0 = performance.now();
  const step = 8 * 1024 * 1024;
  for (let at = 0; at < file.size; at += step) hash.update(await readFile(file, at, Math.min(file.size, at + step)));
  hash.digest('hex');
  result.sha256Seconds = (performance.now() - t0) / 1000;
  return result;
}

scope.onmessage = (event: MessageEvent<EncoderBenchRequest>) => {
  run(event.data).then(
    (result) => scope.postMessage({ ok: true, result }),
    (err: unknown) => scope.postMessage({ ok: false, message: err instanceof Error ? err.message : String(err) }),
  );
};
