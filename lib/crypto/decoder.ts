/**
 * Seekable Node decoder of the stored-object format (node:crypto aes-256-gcm). Opening parses
 * the headers, recovers the session key and checks the final tag; a range then costs only the
 * chunks it touches. Every chunk is authenticated before any of its plaintext is released.
 */
import { type KeyObject, createDecipheriv, createHash, createSecretKey, hkdfSync } from 'node:crypto';
import * as openpgp from 'openpgp';
import {
  AEAD_GCM,
  CIPHER_AES256,
  type CipherLayout,
  IV_LENGTH,
  LITERAL_FIXED_LENGTH,
  LITERAL_FORMAT_BINARY,
  LITERAL_TAG,
  type Layout,
  MAX_CHUNK_OCTET,
  type PacketFrame,
  PKESK_TAG,
  SEIPD_PARAMS_LENGTH,
  SEIPD_TAG,
  SEIPD_VERSION,
  TAG_LENGTH,
  chunkBodyStart,
  chunkNonce,
  chunkPlainLength,
  cipherLayout,
  finalAssociatedData,
  finalTagBodyStart,
  frameHeaders,
  framedPieces,
  framedStart,
  packetFrame,
  parseLengthHeader,
  partialFrameCandidates,
  plaintextOffsetOfFile,
  seipdInfo,
  withLiteral,
} from './format';

/** The object is not a stored object of this format (bad header, truncated, trailing data). */
export class ObjectFormatError extends Error {
  override name = 'ObjectFormatError';
}

/** A tag does not verify, or no private key opens the object: tampered, corrupted or not ours. */
export class ObjectAuthError extends Error {
  override name = 'ObjectAuthError';
}

export interface ObjectSource {
  size: number;
  /** Object bytes [start, endExclusive), e.g. a Node Readable. */
  read(start: number, endExclusive: number): Promise<AsyncIterable<Uint8Array>>;
}

export interface StoredObject {
  fileSize: number;
  name: string;
  date: Date;
  /** File bytes [start, endExclusive), each piece from an authenticated chunk. */
  plaintext(start?: number, endExclusive?: number): AsyncIterable<Buffer>;
}

export interface VerifiedObject {
  fileSize: number;
  name: string;
  date: Date;
  sha256: Buffer;
}

/** PKESK packets of a few keys fit easily; more than this is not a stored object. */
const MAX_PREFIX = 1 << 20;
const FIRST_READ = 4096;
/** Literal tag, longest length header, format octet, name length octet. */
const LITERAL_HEAD = 1 + 5 + 2;

async function readAll(source: ObjectSource, start: number, end: number): Promise<Buffer> {
  const parts: Uint8Array[] = [];
  for await (const piece of await source.read(start, end)) parts.push(piece);
  const out = Buffer.concat(parts);
  if (out.length < end - start) throw new ObjectFormatError(`object ended at ${start + out.length}, expected ${end}`);
  return out.subarray(0, end - start);
}

/**
 * The body octets of a framed stream: `input` holds framed range [start, end) after `skip`
 * leading octets; length headers are checked against the frame and dropped.
 */
async function* unframe(
  input: AsyncIterable<Uint8Array>,
  frame: PacketFrame,
  start: number,
  end: number,
  skip = 0,
): AsyncGenerator<Uint8Array> {
  const plan = framedPieces(frame, start, end);
  let step = plan.next();
  let done = 0; // octets of the current planned piece already consumed
  if (step.done) return;
  for await (let piece of input) {
    if (skip) {
      const n = Math.min(skip, piece.length);
      piece = piece.subarray(n);
      skip -= n;
    }
    while (piece.length && !step.done) {
      const p = step.value;
      const size = p.kind === 'header' ? p.bytes.length : p.end - p.start;
      const n = Math.min(size - done, piece.length);
      if (p.kind === 'header') {
        for (let i = 0; i < n; i++) {
          if (piece[i] !== p.bytes[done + i]) throw new ObjectFormatError('a length header does not match the object size');
        }
      } else {
        yield piece.subarray(0, n);
      }
      piece = piece.subarray(n);
      done += n;
      if (done === size) {
        step = plan.next();
        done = 0;
      }
    }
    if (step.done) return;
  }
  if (!step.done) throw new ObjectFormatError('object ended early');
}

interface Keys {
  key: KeyObject;
  iv: Uint8Array;
}

function deriveKeys(sessionKey: Uint8Array, salt: Uint8Array, chunkOctet: number): Keys {
  const okm = Buffer.from(hkdfSync('sha256', sessionKey, salt, seipdInfo(chunkOctet), 32 + IV_LENGTH));
  const keys = { key: createSecretKey(okm.subarray(0, 32)), iv: new Uint8Array(okm.subarray(32)) };
  okm.fill(0);
  return keys;
}

function finalTagVerifies(keys: Keys, layout: CipherLayout, tag: Uint8Array): boolean {
  const d = createDecipheriv('aes-256-gcm', keys.key, chunkNonce(keys.iv, layout.chunkCount), { authTagLength: TAG_LENGTH });
  d.setAAD(finalAssociatedData(layout.chunkOctet, layout.plaintextLength));
  d.setAuthTag(tag);
  try {
    d.final();
    return true;
  } catch {
    return false;
  }
}

/** SEIPD body octets [b0, b1), read from the object with the length headers in between checked. */
async function readBody(source: ObjectSource, layout: CipherLayout, b0: number, b1: number): Promise<AsyncIterable<Uint8Array>> {
  const f0 = framedStart(layout.seipd, b0);
  const f1 = framedStart(layout.seipd, b1);
  const base = layout.pkeskLength + 1;
  return unframe(await source.read(base + f0, base + f1), layout.seipd, f0, f1);
}

/** Reads authenticated AEAD plaintext, chunk by chunk. */
class ChunkReader {
  /** The last chunk decrypted, so opening and a following read from the start share it. */
  #cache: { index: number; pieces: Buffer[] } | undefined;

  constructor(
    readonly source: ObjectSource,
    readonly layout: CipherLayout,
    readonly keys: Keys,
  ) {}

  /** AEAD plaintext of chunks i0..i1, released one authenticated chunk at a time. */
  async *chunks(i0: number, i1: number): AsyncGenerator<Buffer> {
    const layout = this.layout;
    let i = i0;
    if (this.#cache?.index === i) {
      yield* this.#cache.pieces;
      i++;
    }
    if (i > i1) return;
    const ad = seipdInfo(layout.chunkOctet);
    const start = chunkBodyStart(layout, i);
    const end = chunkBodyStart(layout, i1) + chunkPlainLength(layout, i1) + TAG_LENGTH;
    let pos = start;
    const tag = Buffer.alloc(TAG_LENGTH);
    let tagFill = 0;
    let ctEnd = start + chunkPlainLength(layout, i);
    let decipher = this.#decipher(i, ad);
    let pieces: Buffer[] = [];
    for await (let piece of await readBody(this.source, layout, start, end)) {
      while (piece.length) {
        if (pos < ctEnd) {
          const n = Math.min(piece.length, ctEnd - pos);
          pieces.push(decipher.update(piece.subarray(0, n)));
          piece = piece.subarray(n);
          pos += n;
          continue;
        }
        const n = Math.min(piece.length, TAG_LENGTH - tagFill);
        tag.set(piece.subarray(0, n), tagFill);
        piece = piece.subarray(n);
        pos += n;
        tagFill += n;
        if (tagFill < TAG_LENGTH) continue;
        decipher.setAuthTag(tag);
        try {
          pieces.push(decipher.final());
        } catch {
          throw new ObjectAuthError(`chunk ${i} does not authenticate: the object was altered or damaged`);
        }
        pieces = pieces.filter((p) => p.length);
        this.#cache = { index: i, pieces };
        yield* pieces;
        if (++i > i1) return;
        pieces = [];
        tagFill = 0;
        ctEnd = pos + chunkPlainLength(layout, i);
        decipher = this.#decipher(i, ad);
      }
    }
  }

  /** AEAD plaintext [q0, q1), for small reads while opening. */
  async plainBytes(q0: number, q1: number): Promise<Buffer> {
    const cs = this.layout.chunkSize;
    const i0 = Math.floor(q0 / cs);
    const parts: Buffer[] = [];
    for await (const p of this.chunks(i0, Math.floor((q1 - 1) / cs))) parts.push(p);
    return Buffer.concat(parts).subarray(q0 - i0 * cs, q1 - i0 * cs);
  }

  #decipher(i: number, ad: Uint8Array) {
    const d = createDecipheriv('aes-256-gcm', this.keys.key, chunkNonce(this.keys.iv, i), { authTagLength: TAG_LENGTH });
    d.setAAD(ad);
    return d;
  }
}

/**
 * Picks the frame whose headers are in the stream. Checking each candidate's last partial
 * header and its definite header separates the (at most two) frames one length allows.
 */
async function resolveFrame(
  candidates: PacketFrame[],
  readAt: (framedOffset: number, length: number) => Promise<Uint8Array>,
): Promise<PacketFrame> {
  if (candidates.length === 1) return candidates[0]; // headers are checked as the stream passes them
  const matching: PacketFrame[] = [];
  for (const frame of candidates) {
    const checks = frameHeaders(frame).slice(-2);
    let ok = true;
    for (const h of checks) ok &&= Buffer.from(await readAt(h.offset, h.bytes.length)).equals(h.bytes);
    if (ok) matching.push(frame);
  }
  if (matching.length !== 1) throw new ObjectFormatError('the length headers do not match the object size');
  return matching[0];
}

/** Opens a stored object: parses headers, recovers the session key, checks the final tag. */
export async function openStoredObject(source: ObjectSource, privateKeys: openpgp.PrivateKey[]): Promise<StoredObject> {
  const size = source.size;
  if (!Number.isSafeInteger(size) || size < 0) throw new ObjectFormatError(`bad object size ${size}`);
  let prefix = await readAll(source, 0, Math.min(size, FIRST_READ));
  const ensure = async (n: number) => {
    if (n <= prefix.length) return;
    if (n > size) throw new ObjectFormatError('object ended inside its headers');
    if (n > MAX_PREFIX) throw new ObjectFormatError('headers before the encrypted data are too long');
    prefix = await readAll(source, 0, Math.min(size, MAX_PREFIX, Math.max(n, 2 * prefix.length)));
  };

  // PKESK packets (definite lengths, version 6), then the SEIPD packet.
  let pos = 0;
  for (;;) {
    await ensure(pos + 6);
    if (prefix[pos] !== PKESK_TAG) break;
    const len = parseLengthHeader(prefix, pos + 1);
    if (len?.kind !== 'definite') throw new ObjectFormatError('a PKESK packet has no definite length');
    await ensure(pos + 1 + len.headerLength + 1);
    if (prefix[pos + 1 + len.headerLength] !== 6) throw new ObjectFormatError('a PKESK packet is not version 6');
    pos += 1 + len.headerLength + len.length;
  }
  const pkeskLength = pos;
  if (pkeskLength === 0) throw new ObjectFormatError('no PKESK packet: not a stored object');
  if (prefix[pos] !== SEIPD_TAG) throw new ObjectFormatError(`unexpected packet octet ${prefix[pos]} where SEIPD should start`);
  const first = parseLengthHeader(prefix, pos + 1)!; // ensure(pos + 6) covers the longest header
  const paramsAt = pos + 1 + (first.kind === 'definite' ? first.headerLength : 1);
  await ensure(paramsAt + SEIPD_PARAMS_LENGTH);
  const [version, cipher, aead, chunkOctet] = prefix.subarray(paramsAt, paramsAt + 4);
  if (version !== SEIPD_VERSION || cipher !== CIPHER_AES256 || aead !== AEAD_GCM) {
    throw new ObjectFormatError(`SEIPD v${version} cipher ${cipher} AEAD ${aead}: only v2, AES-256, GCM are stored`);
  }
  if (chunkOctet > MAX_CHUNK_OCTET) throw new ObjectFormatError(`chunk size octet ${chunkOctet} exceeds ${MAX_CHUNK_OCTET}`);
  const salt = prefix.subarray(paramsAt + 4, paramsAt + SEIPD_PARAMS_LENGTH);

  // The SEIPD body length follows from the object size; its headers must agree.
  const framedLength = size - pkeskLength - 1;
  let candidates: PacketFrame[];
  if (first.kind === 'definite') {
    if (first.headerLength + first.length !== framedLength) {
      throw new ObjectFormatError(
        `the SEIPD packet ends at ${pkeskLength + 1 + first.headerLength + first.length}, the object at ${size}: ` +
          (first.headerLength + first.length > framedLength ? 'truncated' : 'trailing data'),
      );
    }
    candidates = [packetFrame(first.length)];
  } else {
    if (first.exponent < 9) throw new ObjectFormatError('a first partial length below 512 octets');
    candidates = partialFrameCandidates(framedLength, first.exponent);
  }
  const viable = candidates.filter((f) => cipherLayout(pkeskLength, chunkOctet, f));
  if (viable.length === 0) throw new ObjectFormatError('the object size fits no SEIPD packet: truncated or trailing data');
  const seipd = await resolveFrame(viable, (f, n) => readAll(source, pkeskLength + 1 + f, pkeskLength + 1 + f + n));
  const cipherSide = cipherLayout(pkeskLength, chunkOctet, seipd)!;

  // The session key: the one (of those the private keys recover) that verifies the final tag.
  let message: openpgp.Message<Uint8Array>;
  try {
    message = await openpgp.readMessage({ binaryMessage: new Uint8Array(prefix.subarray(0, pkeskLength)) });
  } catch (e) {
    throw new ObjectFormatError(`unreadable PKESK packets: ${(e as Error).message}`);
  }
  let sessionKeys: { data: Uint8Array }[];
  try {
    sessionKeys = await openpgp.decryptSessionKeys({ message, decryptionKeys: privateKeys });
  } catch (e) {
    throw new ObjectAuthError(`no private key opens this object: ${(e as Error).message}`);
  }
  const tagParts: Uint8Array[] = [];
  for await (const p of await readBody(source, cipherSide, finalTagBodyStart(cipherSide), seipd.bodyLength)) tagParts.push(p);
  const finalTag = Buffer.concat(tagParts);
  let keys: Keys | undefined;
  for (const { data } of sessionKeys) {
    if (data.length === 32) {
      const k = deriveKeys(data, salt, chunkOctet);
      if (!keys && finalTagVerifies(k, cipherSide, finalTag)) keys = k;
    }
    data.fill(0);
  }
  if (!keys) throw new ObjectAuthError('the final tag does not verify: the object was altered, truncated or is not for these keys');

  // The literal packet: its header, name and date, and the frame of its body.
  const reader = new ChunkReader(source, cipherSide, keys);
  const P = cipherSide.plaintextLength;
  // Read in two steps, so that the chunk left cached is the one the file bytes start in.
  const head = await reader.plainBytes(0, Math.min(P, LITERAL_HEAD));
  const lit = parseLengthHeader(head, 1);
  if (head[0] !== LITERAL_TAG || !lit) throw new ObjectFormatError('the encrypted data is not one literal data packet');
  const prefixAt = 1 + (lit.kind === 'definite' ? lit.headerLength : 1);
  let literalCandidates: PacketFrame[];
  if (lit.kind === 'definite') literalCandidates = [packetFrame(lit.length)];
  else if (lit.exponent < 9) throw new ObjectFormatError('a first partial length below 512 octets');
  else literalCandidates = partialFrameCandidates(P - 1, lit.exponent);
  const nameLength = head[prefixAt + 1];
  if (head.length < prefixAt + 2 || head[prefixAt] !== LITERAL_FORMAT_BINARY || prefixAt + LITERAL_FIXED_LENGTH + nameLength > P) {
    throw new ObjectFormatError('the literal data packet is not binary or its header is cut short');
  }
  const nameAndDate = await reader.plainBytes(prefixAt + 2, prefixAt + LITERAL_FIXED_LENGTH + nameLength);
  const viableLiteral = literalCandidates.filter((f) => withLiteral(cipherSide, f, nameLength));
  if (viableLiteral.length === 0) throw new ObjectFormatError('the literal data packet length does not match the encrypted data');
  const literal = await resolveFrame(viableLiteral, (f, n) => reader.plainBytes(1 + f, 1 + f + n));
  const layout: Layout = withLiteral(cipherSide, literal, nameLength)!;
  const name = new TextDecoder().decode(nameAndDate.subarray(0, nameLength));
  const date = new Date(nameAndDate.readUInt32BE(nameLength) * 1000);

  return {
    fileSize: layout.fileSize,
    name,
    date,
    plaintext: (start = 0, end = layout.fileSize) => plaintext(reader, layout, start, end),
  };
}

async function* plaintext(reader: ChunkReader, layout: Layout, start: number, end: number): AsyncGenerator<Buffer> {
  if (!Number.isSafeInteger(start) || !Number.isSafeInteger(end) || start < 0 || start > end || end > layout.fileSize) {
    throw new RangeError(`range [${start}, ${end}) outside 0..${layout.fileSize}`);
  }
  if (start === end) return;
  const q0 = plaintextOffsetOfFile(layout, start);
  const q1 = plaintextOffsetOfFile(layout, end);
  const i0 = Math.floor(q0 / layout.chunkSize);
  const chunks = reader.chunks(i0, Math.floor((q1 - 1) / layout.chunkSize));
  for await (const piece of unframe(chunks, layout.literal, q0 - 1, q1 - 1, q0 - i0 * layout.chunkSize)) {
    yield Buffer.from(piece.buffer, piece.byteOffset, piece.byteLength);
  }
}

/** Streams the whole object once: every header, chunk tag and the final tag; SHA-256 of the file bytes. */
export async function verifyStoredObject(source: ObjectSource, privateKeys: openpgp.PrivateKey[]): Promise<VerifiedObject> {
  const obj = await openStoredObject(source, privateKeys);
  const hash = createHash('sha256');
  for await (const piece of obj.plaintext()) hash.update(piece);
  return { fileSize: obj.fileSize, name: obj.name, date: obj.date, sha256: hash.digest() };
}
