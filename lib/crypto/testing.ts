/** Helpers shared by the lib/crypto tests: keys, whole-object encoding, in-memory sources. */
import { randomBytes, randomInt } from 'node:crypto';
import * as openpgp from 'openpgp';
import type { ObjectSource } from './decoder';
import { FileEncoder, type FileEncryption, newFileEncryption } from './encoder';
import type { Framing } from './format';

export interface TestKey {
  publicKey: string;
  privateKey: openpgp.PrivateKey;
}

export async function testKey(name = 'Test mailbox'): Promise<TestKey> {
  const { publicKey, privateKey } = await openpgp.generateKey({
    type: 'curve25519',
    userIDs: [{ name }],
    format: 'object',
    config: { aeadProtect: true, v6Keys: true },
  });
  return { publicKey: publicKey.armor(), privateKey };
}

export interface EncodeOptions {
  name?: string;
  date?: Date;
  chunkOctet?: number;
  framing?: Framing;
}

export interface Encoded {
  encryption: FileEncryption;
  object: Uint8Array;
}

export function encoderFor(encryption: FileEncryption, data: Uint8Array, onChunkTag?: (i: number, tag: Uint8Array) => void) {
  return new FileEncoder({ ...encryption, readPlain: async (s, e) => data.subarray(s, e), onChunkTag });
}

/** Encrypts `data` to the keys in one range() call: the "single pass" other results are compared with. */
export async function encode(keys: TestKey[], data: Uint8Array, opts: EncodeOptions = {}): Promise<Encoded> {
  const encryption = await newFileEncryption({
    publicKeys: keys.map((k) => k.publicKey),
    name: opts.name ?? 'file.bin',
    fileSize: data.length,
    date: opts.date,
    chunkOctet: opts.chunkOctet,
    framing: opts.framing,
  });
  const encoder = encoderFor(encryption, data);
  return { encryption, object: await encoder.range(0, encoder.totalLength) };
}

/** A source over bytes in memory that answers reads in pieces of random size, to split headers and tags. */
export function memorySource(bytes: Uint8Array, maxPiece = 4096): ObjectSource & { reads: [number, number][] } {
  const reads: [number, number][] = [];
  return {
    size: bytes.length,
    reads,
    async read(start, end) {
      if (start < 0 || end > bytes.length || start > end) throw new RangeError(`bad read [${start}, ${end})`);
      reads.push([start, end]);
      return (async function* () {
        for (let at = start; at < end; ) {
          const n = Math.min(end - at, randomInt(1, maxPiece + 1));
          yield bytes.subarray(at, at + n);
          at += n;
        }
      })();
    },
  };
}

export function randomData(n: number): Uint8Array {
  return new Uint8Array(randomBytes(n));
}

export async function collect(pieces: AsyncIterable<Uint8Array>): Promise<Buffer> {
  const parts: Uint8Array[] = [];
  for await (const p of pieces) parts.push(p);
  return Buffer.concat(parts);
}
