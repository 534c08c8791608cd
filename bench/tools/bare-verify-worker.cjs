// The bare yardsticks' cryptography (bench/tools/bare-verify.ts, bench/tools/client.ts), in plain
// CommonJS so that a worker thread can run it without the TypeScript loader. In a worker, it takes
// arrays of pieces in order, answers 'done' for each, and the digest for 'end'.
const crypto = require('node:crypto');
const { isMainThread, parentPort, workerData } = require('node:worker_threads');

/**
 * AES-256-GCM over a stream as the format chunks it: a new cipher (`decrypt` or not) every
 * `chunk` bytes. `update` hands each output piece to `emit`.
 */
function chunkedGcm(decrypt, key, nonce, chunk) {
  const start = () => (decrypt ? crypto.createDecipheriv : crypto.createCipheriv)('aes-256-gcm', key, nonce);
  let cipher = start();
  let left = chunk;
  return (piece, emit) => {
    while (piece.byteLength) {
      const n = Math.min(left, piece.byteLength);
      emit(cipher.update(piece.subarray(0, n)));
      piece = piece.subarray(n);
      left -= n;
      if (left === 0) {
        cipher = start();
        left = chunk;
      }
    }
  };
}

/** SHA-256 of the AES-256-GCM decryption of the pieces. */
function decryptAndHash(key, nonce, chunk) {
  const hash = crypto.createHash('sha256');
  const decrypt = chunkedGcm(true, key, nonce, chunk);
  const toHash = (out) => hash.update(out);
  return { update: (piece) => decrypt(piece, toHash), digest: () => hash.digest() };
}

if (!isMainThread) {
  const state = decryptAndHash(workerData.key, workerData.nonce, workerData.chunk);
  parentPort.on('message', (m) => {
    if (m === 'end') return parentPort.postMessage(state.digest());
    for (const piece of m) state.update(piece);
    parentPort.postMessage('done');
  });
}

module.exports = { chunkedGcm, decryptAndHash };
