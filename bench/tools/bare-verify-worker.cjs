// The bare verifier's decryption and hashing (bench/tools/bare-verify.ts), in plain CommonJS so
// that a worker thread can run it without the TypeScript loader. In a worker, it takes arrays of
// pieces in order, answers 'done' for each, and the digest for 'end'.
const crypto = require('node:crypto');
const { isMainThread, parentPort, workerData } = require('node:worker_threads');

/** SHA-256 of the AES-256-GCM decryption of the pieces, a new decipher every `chunk` bytes. */
function decryptAndHash(key, nonce, chunk) {
  const hash = crypto.createHash('sha256');
  let decipher = crypto.createDecipheriv('aes-256-gcm', key, nonce);
  let left = chunk;
  return {
    update(piece) {
      while (piece.byteLength) {
        const n = Math.min(left, piece.byteLength);
        hash.update(decipher.update(piece.subarray(0, n)));
        piece = piece.subarray(n);
        left -= n;
        if (left === 0) {
          decipher = crypto.createDecipheriv('aes-256-gcm', key, nonce);
          left = chunk;
        }
      }
    },
    digest: () => hash.digest(),
  };
}

if (!isMainThread) {
  const state = decryptAndHash(workerData.key, workerData.nonce, workerData.chunk);
  parentPort.on('message', (m) => {
    if (m === 'end') return parentPort.postMessage(state.digest());
    for (const piece of m) state.update(piece);
    parentPort.postMessage('done');
  });
}

module.exports = { decryptAndHash };
