/**
 * Layout math of the stored-object format (FORMAT.md): one RFC 9580 message made of
 * PKESK packet(s) ‖ SEIPD v2 packet (AES-256, GCM, chunked) whose AEAD plaintext is one
 * Literal Data packet. Pure arithmetic, shared by the browser encoder and the Node decoder.
 * Lengths pass 2^32, so nothing here uses bitwise operators on them.
 */

export interface Framing {
  /** Body lengths above this are split into partial segments; at most 2^32 − 1, the largest definite length. */
  partialThreshold: number;
  /** log2 of the partial segment length: 9..30 (RFC 9580: a first partial segment is at least 512 octets). */
  partialExponent: number;
}

export const DEFAULT_FRAMING: Readonly<Framing> = Object.freeze({ partialThreshold: 2 ** 32 - 1, partialExponent: 30 });
export const DEFAULT_CHUNK_OCTET = 16;
export const MAX_CHUNK_OCTET = 16;
export const MAX_NAME_LENGTH = 255;
export const TAG_LENGTH = 16;
export const SALT_LENGTH = 32;
export const IV_LENGTH = 4;
/** Version 2, AES-256, GCM, chunk size octet, salt. */
export const SEIPD_PARAMS_LENGTH = 4 + SALT_LENGTH;
export const SEIPD_VERSION = 2;
export const CIPHER_AES256 = 9;
export const AEAD_GCM = 3;
/** New-format packet tag octets: SEIPD (18), Literal Data (11), PKESK (1). */
export const SEIPD_TAG = 0xd2;
export const LITERAL_TAG = 0xcb;
export const PKESK_TAG = 0xc1;
export const LITERAL_FORMAT_BINARY = 0x62;
/** Format octet, name length octet, date (4): the literal body before the name and file bytes. */
export const LITERAL_FIXED_LENGTH = 6;

const MAX_DEFINITE = 2 ** 32 - 1;
const MIN_PARTIAL_EXPONENT = 9;
const MAX_PARTIAL_EXPONENT = 30;

/** How one packet body is cut into length-framed pieces (everything after the packet tag octet). */
export interface PacketFrame {
  bodyLength: number;
  /** Octets per partial segment (2^p); meaningful only when `partials` > 0. */
  segmentLength: number;
  /** The one-octet partial header `E0 | p`. */
  partialHeader: Uint8Array;
  /** Number of partial segments k. */
  partials: number;
  /** Octets after the partial segments (R), announced by `lastHeader`. */
  lastLength: number;
  lastHeader: Uint8Array;
  /** k·(2^p + 1) + |lastHeader| + R. */
  framedLength: number;
}

export function definiteHeaderLength(length: number): number {
  return length < 192 ? 1 : length < 8384 ? 2 : 5;
}

/** The minimal definite length header (RFC 9580 §4.2.1.1–3). */
export function definiteHeader(length: number): Uint8Array {
  if (!Number.isInteger(length) || length < 0 || length > MAX_DEFINITE) {
    throw new RangeError(`length ${length} has no definite header`);
  }
  if (length < 192) return Uint8Array.of(length);
  if (length < 8384) return Uint8Array.of(Math.floor((length - 192) / 256) + 192, (length - 192) % 256);
  const out = new Uint8Array(5);
  out[0] = 0xff;
  new DataView(out.buffer).setUint32(1, length);
  return out;
}

export type LengthHeader =
  | { kind: 'definite'; length: number; headerLength: number }
  | { kind: 'partial'; exponent: number };

/** Reads the length header at `offset`; undefined when `bytes` ends before the header does. */
export function parseLengthHeader(bytes: Uint8Array, offset: number): LengthHeader | undefined {
  if (offset >= bytes.length) return undefined;
  const b = bytes[offset];
  if (b < 192) return { kind: 'definite', length: b, headerLength: 1 };
  if (b < 224) {
    if (offset + 2 > bytes.length) return undefined;
    return { kind: 'definite', length: (b - 192) * 256 + bytes[offset + 1] + 192, headerLength: 2 };
  }
  if (b < 255) return { kind: 'partial', exponent: b - 224 };
  if (offset + 5 > bytes.length) return undefined;
  const view = new DataView(bytes.buffer, bytes.byteOffset + offset + 1, 4);
  return { kind: 'definite', length: view.getUint32(0), headerLength: 5 };
}

/** The frame of a body of `bodyLength` octets: definite, or partial segments of 2^exponent then a definite rest. */
export function packetFrame(bodyLength: number, partialExponent?: number): PacketFrame {
  if (!Number.isSafeInteger(bodyLength) || bodyLength < 0) throw new RangeError(`bad body length ${bodyLength}`);
  const exponent = partialExponent ?? MAX_PARTIAL_EXPONENT;
  if (!Number.isInteger(exponent) || exponent < MIN_PARTIAL_EXPONENT || exponent > MAX_PARTIAL_EXPONENT) {
    throw new RangeError(`partial exponent must be ${MIN_PARTIAL_EXPONENT}..${MAX_PARTIAL_EXPONENT}, got ${exponent}`);
  }
  const segmentLength = 2 ** exponent;
  const partials = partialExponent === undefined || bodyLength === 0 ? 0 : Math.floor((bodyLength - 1) / segmentLength);
  const lastLength = bodyLength - partials * segmentLength;
  const lastHeader = definiteHeader(lastLength);
  return {
    bodyLength,
    segmentLength,
    partialHeader: Uint8Array.of(0xe0 + exponent),
    partials,
    lastLength,
    lastHeader,
    framedLength: partials * (segmentLength + 1) + lastHeader.length + lastLength,
  };
}

/** The framing rule of FORMAT.md: definite up to the threshold, partial segments above it. */
export function framePacket(bodyLength: number, framing: Framing = DEFAULT_FRAMING): PacketFrame {
  return packetFrame(bodyLength, bodyLength > framing.partialThreshold ? framing.partialExponent : undefined);
}

/**
 * Every partially framed body (k ≥ 1) whose framed length is `framedLength`. Length alone can
 * leave two (a last segment of 1–3 octets against one of nearly 2^p), so a reader checks headers.
 */
export function partialFrameCandidates(framedLength: number, exponent: number): PacketFrame[] {
  const seg = 2 ** exponent;
  const out: PacketFrame[] = [];
  // The rest after k segments holds a header (1, 2 or 5 octets) and 1..seg body octets.
  const kMin = Math.max(1, Math.ceil((framedLength - seg - 5) / (seg + 1)));
  const kMax = Math.floor((framedLength - 2) / (seg + 1));
  for (let k = kMin; k <= kMax; k++) {
    const rest = framedLength - k * (seg + 1);
    for (const h of [1, 2, 5]) {
      const r = rest - h;
      if (r >= 1 && r <= seg && definiteHeaderLength(r) === h) out.push(packetFrame(k * seg + r, exponent));
    }
  }
  return out;
}

/** Framed offset of body octet `b` (0 ≤ b < L). */
function framedOffsetOf(frame: PacketFrame, b: number): number {
  const { partials: k, segmentLength: seg } = frame;
  const j = Math.floor(b / seg);
  if (j < k) return j * (seg + 1) + 1 + (b - j * seg);
  return k * (seg + 1) + frame.lastHeader.length + (b - k * seg);
}

/**
 * Framed offset where the body range starting at `b` begins, headers just before it included,
 * so that consecutive body ranges map to adjacent framed ranges; framedStart(L) = framedLength.
 */
export function framedStart(frame: PacketFrame, b: number): number {
  return b === 0 ? 0 : framedOffsetOf(frame, b - 1) + 1;
}

/** Body octets before framed offset `f`: the body offset of the first body octet at or after f. */
export function bodyOffsetAt(frame: PacketFrame, f: number): number {
  const { partials: k, segmentLength: seg } = frame;
  if (f < k * (seg + 1)) {
    const j = Math.floor(f / (seg + 1));
    return j * seg + Math.max(0, f - j * (seg + 1) - 1);
  }
  return Math.min(frame.bodyLength, k * seg + Math.max(0, f - k * (seg + 1) - frame.lastHeader.length));
}

/** Framed offset and bytes of every length header of a frame. */
export function frameHeaders(frame: PacketFrame): { offset: number; bytes: Uint8Array }[] {
  const out = [];
  for (let j = 0; j < frame.partials; j++) out.push({ offset: j * (frame.segmentLength + 1), bytes: frame.partialHeader });
  out.push({ offset: frame.partials * (frame.segmentLength + 1), bytes: frame.lastHeader });
  return out;
}

export type FramedPiece = { kind: 'header'; bytes: Uint8Array } | { kind: 'body'; start: number; end: number };

/** The headers (or parts of them) and body ranges that make up framed range [start, end), in order. */
export function* framedPieces(frame: PacketFrame, start: number, end: number): Generator<FramedPiece> {
  if (start < 0 || end > frame.framedLength || start > end) {
    throw new RangeError(`framed range [${start}, ${end}) outside 0..${frame.framedLength}`);
  }
  const { partials: k, segmentLength: seg } = frame;
  const lastStart = k * (seg + 1);
  const h = frame.lastHeader.length;
  let f = start;
  while (f < end) {
    if (f < lastStart) {
      const j = Math.floor(f / (seg + 1));
      const segStart = j * (seg + 1);
      if (f === segStart) {
        yield { kind: 'header', bytes: frame.partialHeader };
        f++;
        continue;
      }
      const stop = Math.min(end, segStart + seg + 1);
      const b = j * seg + (f - segStart - 1);
      yield { kind: 'body', start: b, end: b + (stop - f) };
      f = stop;
    } else if (f < lastStart + h) {
      const stop = Math.min(end, lastStart + h);
      yield { kind: 'header', bytes: frame.lastHeader.subarray(f - lastStart, stop - lastStart) };
      f = stop;
    } else {
      const b = k * seg + (f - lastStart - h);
      yield { kind: 'body', start: b, end: b + (end - f) };
      f = end;
    }
  }
}

/** The ciphertext side of a stored object: what a reader knows before decrypting anything. */
export interface CipherLayout {
  pkeskLength: number;
  chunkOctet: number;
  /** 2^(c+6) plaintext octets per chunk. */
  chunkSize: number;
  /** P: AEAD plaintext octets (the whole Literal Data packet). */
  plaintextLength: number;
  /** N = max(1, ⌈P / chunkSize⌉). */
  chunkCount: number;
  /** A = P + 16·N + 16. */
  aeadLength: number;
  /** The SEIPD packet body, S = 36 + A octets. */
  seipd: PacketFrame;
  /** |PKESK| + 1 + S + framing(S): the tus Upload-Length. */
  total: number;
}

export interface Layout extends CipherLayout {
  nameLength: number;
  fileSize: number;
  /** The Literal Data body: 6 + n + F octets. */
  literal: PacketFrame;
}

function checkChunkOctet(c: number): void {
  if (!Number.isInteger(c) || c < 0 || c > MAX_CHUNK_OCTET) throw new RangeError(`chunk octet must be 0..16, got ${c}`);
}

function chunkCountFor(plaintextLength: number, chunkSize: number): number {
  return Math.max(1, Math.ceil(plaintextLength / chunkSize));
}

/** S for a given P. */
export function seipdBodyLength(plaintextLength: number, chunkOctet: number): number {
  return SEIPD_PARAMS_LENGTH + plaintextLength + TAG_LENGTH * chunkCountFor(plaintextLength, 2 ** (chunkOctet + 6)) + TAG_LENGTH;
}

/** The cipher layout for a SEIPD body frame, or undefined when no P gives that body length. */
export function cipherLayout(pkeskLength: number, chunkOctet: number, seipd: PacketFrame): CipherLayout | undefined {
  checkChunkOctet(chunkOctet);
  const chunkSize = 2 ** (chunkOctet + 6);
  // S − 52 = P + 16·N, and N = ⌈(S − 52) / (chunkSize + 16)⌉ because the last chunk holds 1..chunkSize octets.
  const x = seipd.bodyLength - SEIPD_PARAMS_LENGTH - TAG_LENGTH;
  if (x < TAG_LENGTH) return undefined;
  const n = Math.ceil(x / (chunkSize + TAG_LENGTH));
  const plaintextLength = x - TAG_LENGTH * n;
  if (chunkCountFor(plaintextLength, chunkSize) !== n) return undefined;
  return {
    pkeskLength,
    chunkOctet,
    chunkSize,
    plaintextLength,
    chunkCount: n,
    aeadLength: plaintextLength + TAG_LENGTH * n + TAG_LENGTH,
    seipd,
    total: pkeskLength + 1 + seipd.framedLength,
  };
}

/** Adds the literal packet to a cipher layout; undefined when the literal frame does not fill P. */
export function withLiteral(cipher: CipherLayout, literal: PacketFrame, nameLength: number): Layout | undefined {
  const fileSize = literal.bodyLength - LITERAL_FIXED_LENGTH - nameLength;
  if (1 + literal.framedLength !== cipher.plaintextLength || fileSize < 0) return undefined;
  return { ...cipher, nameLength, fileSize, literal };
}

export interface LayoutInput {
  pkeskLength: number;
  nameLength: number;
  fileSize: number;
  chunkOctet?: number;
  framing?: Framing;
}

/** Sizes and frames of the object an encoder writes (FORMAT.md, "Sizes"). */
export function computeLayout({
  pkeskLength,
  nameLength,
  fileSize,
  chunkOctet = DEFAULT_CHUNK_OCTET,
  framing = DEFAULT_FRAMING,
}: LayoutInput): Layout {
  checkChunkOctet(chunkOctet);
  if (!Number.isSafeInteger(fileSize) || fileSize < 0) throw new RangeError(`bad file size ${fileSize}`);
  if (!Number.isInteger(nameLength) || nameLength < 0 || nameLength > MAX_NAME_LENGTH) {
    throw new RangeError(`name length must be 0..${MAX_NAME_LENGTH} octets, got ${nameLength}`);
  }
  if (!Number.isInteger(pkeskLength) || pkeskLength < 1) throw new RangeError(`bad PKESK length ${pkeskLength}`);
  const { partialThreshold: t, partialExponent: p } = framing;
  if (!Number.isInteger(t) || t < 0 || t > MAX_DEFINITE) throw new RangeError(`partial threshold must be 0..2^32-1, got ${t}`);
  packetFrame(0, p); // validates the exponent
  const literal = framePacket(LITERAL_FIXED_LENGTH + nameLength + fileSize, framing);
  const seipd = framePacket(seipdBodyLength(1 + literal.framedLength, chunkOctet), framing);
  // S was computed from P, and P from the literal frame: both always fit.
  return withLiteral(cipherLayout(pkeskLength, chunkOctet, seipd)!, literal, nameLength)!;
}

/** Plaintext octets in chunk i (the last one may be shorter). */
export function chunkPlainLength(layout: CipherLayout, i: number): number {
  return Math.min(layout.chunkSize, layout.plaintextLength - i * layout.chunkSize);
}

/** SEIPD body offset of chunk i's first ciphertext octet. */
export function chunkBodyStart(layout: CipherLayout, i: number): number {
  return SEIPD_PARAMS_LENGTH + i * (layout.chunkSize + TAG_LENGTH);
}

/** SEIPD body offset of the final tag. */
export function finalTagBodyStart(layout: CipherLayout): number {
  return layout.seipd.bodyLength - TAG_LENGTH;
}

/** AEAD plaintext offset where the file range starting at file offset `f` begins (headers just before it included). */
export function plaintextOffsetOfFile(layout: Layout, f: number): number {
  return 1 + framedStart(layout.literal, LITERAL_FIXED_LENGTH + layout.nameLength + f);
}

export type ObjectLocation =
  | { region: 'chunk'; chunk: number; /** within the chunk's ciphertext ‖ tag */ offset: number }
  | {
      region: 'pkesk' | 'packet-header' | 'seipd-params' | 'final-tag';
      /** The first chunk after this octet; chunkCount when none follows. */
      nextChunk: number;
    };

/** Where object octet `offset` lies, in closed form. */
export function locate(layout: CipherLayout, offset: number): ObjectLocation {
  if (!Number.isSafeInteger(offset) || offset < 0 || offset >= layout.total) {
    throw new RangeError(`offset ${offset} outside 0..${layout.total - 1}`);
  }
  if (offset < layout.pkeskLength) return { region: 'pkesk', nextChunk: 0 };
  const f = offset - layout.pkeskLength - 1;
  const b = bodyOffsetAt(layout.seipd, Math.max(0, f));
  const isHeader = f < 0 || framedOffsetOf(layout.seipd, b) !== f;
  const stride = layout.chunkSize + TAG_LENGTH;
  const inChunks = b >= SEIPD_PARAMS_LENGTH && b < finalTagBodyStart(layout);
  const chunk = inChunks ? Math.floor((b - SEIPD_PARAMS_LENGTH) / stride) : b < SEIPD_PARAMS_LENGTH ? 0 : layout.chunkCount;
  if (isHeader) return { region: 'packet-header', nextChunk: chunk };
  if (b < SEIPD_PARAMS_LENGTH) return { region: 'seipd-params', nextChunk: 0 };
  if (!inChunks) return { region: 'final-tag', nextChunk: layout.chunkCount };
  return { region: 'chunk', chunk, offset: b - chunkBodyStart(layout, chunk) };
}

/** The five octets `D2 02 09 03 c`: HKDF info and every chunk's associated data. */
export function seipdInfo(chunkOctet: number): Uint8Array<ArrayBuffer> {
  return Uint8Array.of(SEIPD_TAG, SEIPD_VERSION, CIPHER_AES256, AEAD_GCM, chunkOctet);
}

/** `D2 02 09 03 c ‖ uint64_be(P)`: the final tag's associated data. */
export function finalAssociatedData(chunkOctet: number, plaintextLength: number): Uint8Array<ArrayBuffer> {
  const out = new Uint8Array(13);
  out.set(seipdInfo(chunkOctet));
  writeUint64(out, 5, plaintextLength);
  return out;
}

/** IV ‖ uint64_be(index): the GCM nonce of chunk `index` (index N gives the final tag's). */
export function chunkNonce(iv: Uint8Array, index: number): Uint8Array<ArrayBuffer> {
  const out = new Uint8Array(12);
  out.set(iv.subarray(0, IV_LENGTH));
  writeUint64(out, IV_LENGTH, index);
  return out;
}

function writeUint64(out: Uint8Array, offset: number, value: number): void {
  const view = new DataView(out.buffer, out.byteOffset + offset, 8);
  view.setUint32(0, Math.floor(value / 2 ** 32));
  view.setUint32(4, value % 2 ** 32);
}
