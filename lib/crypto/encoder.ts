/**
 * Browser (Web Worker) and Node encoder of the stored-object format: WebCrypto for AES-GCM and
 * HKDF, openpgp.js only for PKESK packets. Encryption is deterministic given the message key,
 * so any byte range can be recomputed later, which is what makes uploads resumable.
 */
import * as openpgp from 'openpgp';
import {
  DEFAULT_CHUNK_OCTET,
  DEFAULT_FRAMING,
  type Framing,
  IV_LENGTH,
  LITERAL_FIXED_LENGTH,
  LITERAL_FORMAT_BINARY,
  LITERAL_TAG,
  type Layout,
  MAX_NAME_LENGTH,
  SALT_LENGTH,
  SEIPD_PARAMS_LENGTH,
  SEIPD_TAG,
  TAG_LENGTH,
  chunkBodyStart,
  chunkNonce,
  chunkPlainLength,
  computeLayout,
  finalAssociatedData,
  finalTagBodyStart,
  framedPieces,
  locate,
  seipdInfo,
} from './format';

/** Everything about one file's encryption except the key: plain data, structured-clone safe (IndexedDB). */
export interface EncryptionHeader {
  pkesk: Uint8Array;
  salt: Uint8Array;
  /** UTF-8 bytes, at most 255. */
  name: Uint8Array;
  /** Seconds since the epoch. */
  date: number;
  fileSize: number;
  chunkOctet: number;
  framing: Framing;
}

export interface FileEncryption {
  header: EncryptionHeader;
  /** Non-extractable AES-256-GCM key, usable for 'encrypt' only. */
  messageKey: CryptoKey;
  /** The 4-octet IV that prefixes every chunk nonce. */
  iv: Uint8Array;
}

export interface NewFileEncryptionOptions {
  /** Armored public keys of the mailbox. */
  publicKeys: string[];
  name: string;
  fileSize: number;
  /** The literal packet's date; defaults to now. */
  date?: Date;
  chunkOctet?: number;
  framing?: Framing;
}

/** RFC 9580 feature flag "Version 2 SEIPD" (openpgp's enums.features is missing from its typings). */
const FEATURE_SEIPDV2 = 0x08;

type SelfSigned = openpgp.Key & {
  getPrimarySelfSignature(): Promise<{ features: ArrayLike<number> | null }>;
};

/** Throws unless the key advertises SEIPDv2, which openpgp.js and RFC 9580 readers require for this format. */
export async function assertSeipdV2(key: openpgp.Key): Promise<void> {
  const { features } = await (key as SelfSigned).getPrimarySelfSignature();
  if (!features || !((features[0] ?? 0) & FEATURE_SEIPDV2)) {
    throw new Error(
      `public key ${key.getFingerprint()} does not advertise SEIPDv2 (feature 0x08); ` +
        'generate mailbox keys with config { aeadProtect: true, v6Keys: true }',
    );
  }
}

/**
 * Starts encrypting one file: a random session key and salt, PKESK packets for the keys, and
 * the message key derived from them. The raw session key does not outlive this call.
 */
export async function newFileEncryption(opts: NewFileEncryptionOptions): Promise<FileEncryption> {
  if (opts.publicKeys.length === 0) throw new Error('at least one public key is needed');
  const name = new TextEncoder().encode(opts.name);
  if (name.length > MAX_NAME_LENGTH) throw new RangeError(`file name is ${name.length} UTF-8 bytes, at most 255 fit`);
  const date = Math.floor((opts.date ?? new Date()).getTime() / 1000);
  if (!(date >= 0 && date < 2 ** 32)) throw new RangeError('the date must lie between 1970 and 2106 (32-bit seconds)');
  const chunkOctet = opts.chunkOctet ?? DEFAULT_CHUNK_OCTET;
  const framing = { ...(opts.framing ?? DEFAULT_FRAMING) };

  const keys = await Promise.all(opts.publicKeys.map((armoredKey) => openpgp.readKey({ armoredKey })));
  await Promise.all(keys.map(assertSeipdV2));

  const subtle = globalThis.crypto.subtle;
  const sessionKey = globalThis.crypto.getRandomValues(new Uint8Array(32));
  const salt = globalThis.crypto.getRandomValues(new Uint8Array(SALT_LENGTH));
  try {
    // aeadAlgorithm makes openpgp.js emit v6 PKESK packets, the ones RFC 9580 pairs with SEIPDv2.
    const pkesk = await openpgp.encryptSessionKey({
      data: sessionKey,
      algorithm: 'aes256',
      aeadAlgorithm: 'gcm',
      encryptionKeys: keys,
      format: 'binary',
    });
    const header: EncryptionHeader = { pkesk, salt, name, date, fileSize: opts.fileSize, chunkOctet, framing };
    computeLayout(layoutInput(header)); // rejects a bad size, chunk octet or framing before anything is uploaded
    const ikm = await subtle.importKey('raw', sessionKey, 'HKDF', false, ['deriveBits']);
    const okm = new Uint8Array(
      await subtle.deriveBits({ name: 'HKDF', hash: 'SHA-256', salt, info: seipdInfo(chunkOctet) }, ikm, 8 * (32 + IV_LENGTH)),
    );
    const messageKey = await subtle.importKey('raw', okm.subarray(0, 32), 'AES-GCM', false, ['encrypt']);
    const iv = okm.slice(32, 32 + IV_LENGTH);
    okm.fill(0);
    return { header, messageKey, iv };
  } finally {
    sessionKey.fill(0);
  }
}

function layoutInput(h: EncryptionHeader) {
  return {
    pkeskLength: h.pkesk.length,
    nameLength: h.name.length,
    fileSize: h.fileSize,
    chunkOctet: h.chunkOctet,
    framing: h.framing,
  };
}

export interface FileEncoderOptions {
  header: EncryptionHeader;
  messageKey: CryptoKey;
  iv: Uint8Array;
  /** File bytes [start, end) — exactly end − start of them. */
  readPlain: (start: number, end: number) => Promise<Uint8Array>;
  /**
   * Fills `target` with the file bytes from `start` on. When given, a chunk that is file bytes only
   * is read into one buffer the encoder reuses: a 4 MiB allocation less per chunk, which is what
   * drives garbage collection in a Node sender.
   */
  readPlainInto?: (target: Uint8Array, start: number) => Promise<void>;
  /** Called with the tag of every chunk pieces() (and so range()) encrypts, in order; keep them to check a resume. */
  onChunkTag?: (index: number, tag: Uint8Array) => void;
}

/** WebCrypto wants ArrayBuffer-backed views; a view on shared memory is copied. */
function ownBuffer(u: Uint8Array): Uint8Array<ArrayBuffer> {
  return u.buffer instanceof ArrayBuffer ? (u as Uint8Array<ArrayBuffer>) : new Uint8Array(u);
}

/** Produces any byte range of one file's stored object. */
export class FileEncoder {
  readonly layout: Layout;
  readonly totalLength: number;
  readonly #header: EncryptionHeader;
  readonly #key: CryptoKey;
  readonly #iv: Uint8Array;
  readonly #readPlain: FileEncoderOptions['readPlain'];
  readonly #readPlainInto: FileEncoderOptions['readPlainInto'];
  #readBuffer: Uint8Array<ArrayBuffer> | undefined;
  /** Settles when the chunk before has handed its plaintext to WebCrypto (which copies it). */
  #readTurn: Promise<void> = Promise.resolve();
  readonly #onChunkTag: FileEncoderOptions['onChunkTag'];
  readonly #ad: Uint8Array<ArrayBuffer>;
  readonly #params: Uint8Array;
  /** Literal body octets before the file bytes: format, name length, name, date. */
  readonly #literalPrefix: Uint8Array;
  /** The most recently encrypted chunk, so adjacent ranges do not encrypt a boundary chunk twice. */
  #cache: { index: number; bytes: Uint8Array; reported: boolean } | undefined;
  #finalTag: Promise<Uint8Array> | undefined;

  constructor(opts: FileEncoderOptions) {
    const h = opts.header;
    this.layout = computeLayout(layoutInput(h));
    this.totalLength = this.layout.total;
    this.#header = h;
    this.#key = opts.messageKey;
    if (opts.iv.length !== IV_LENGTH) throw new RangeError(`iv must be ${IV_LENGTH} octets`);
    this.#iv = opts.iv;
    this.#readPlain = opts.readPlain;
    this.#readPlainInto = opts.readPlainInto;
    this.#onChunkTag = opts.onChunkTag;
    this.#ad = seipdInfo(h.chunkOctet);
    if (h.salt.length !== SALT_LENGTH) throw new RangeError(`salt must be ${SALT_LENGTH} octets`);
    this.#params = new Uint8Array(SEIPD_PARAMS_LENGTH);
    this.#params.set(this.#ad.subarray(1));
    this.#params.set(h.salt, 4);
    this.#literalPrefix = new Uint8Array(LITERAL_FIXED_LENGTH + h.name.length);
    this.#literalPrefix[0] = LITERAL_FORMAT_BINARY;
    this.#literalPrefix[1] = h.name.length;
    this.#literalPrefix.set(h.name, 2);
    new DataView(this.#literalPrefix.buffer).setUint32(2 + h.name.length, h.date);
  }

  /** Ciphertext bytes [start, end) of the whole stored object. */
  async range(start: number, end: number): Promise<Uint8Array> {
    this.#checkRange(start, end);
    const out = new Uint8Array(end - start);
    let o = 0;
    for await (const bytes of this.pieces(start, end)) {
      out.set(bytes, o);
      o += bytes.length;
    }
    return out;
  }

  /**
   * The same bytes as range(start, end), as consecutive views (at most one AEAD chunk each),
   * produced as they are consumed: a stream of any length costs no more memory than a chunk.
   */
  async *pieces(start: number, end: number): AsyncGenerator<Uint8Array> {
    this.#checkRange(start, end);
    const pk = this.layout.pkeskLength;
    if (start < pk && start < end) yield this.#header.pkesk.subarray(start, Math.min(end, pk));
    if (start <= pk && pk < end) yield Uint8Array.of(SEIPD_TAG);
    const o = Math.max(start, pk + 1);
    if (o < end) {
      for (const piece of framedPieces(this.layout.seipd, o - pk - 1, end - pk - 1)) {
        if (piece.kind === 'header') yield piece.bytes;
        else yield* this.#body(piece.start, piece.end);
      }
    }
  }

  #checkRange(start: number, end: number): void {
    if (!Number.isSafeInteger(start) || !Number.isSafeInteger(end) || start < 0 || start > end || end > this.totalLength) {
      throw new RangeError(`range [${start}, ${end}) outside 0..${this.totalLength}`);
    }
  }

  /** Recomputes chunk i's tag from the file as it is now (does not call onChunkTag). */
  async chunkTag(i: number): Promise<Uint8Array> {
    if (!Number.isInteger(i) || i < 0 || i >= this.layout.chunkCount) throw new RangeError(`no chunk ${i}`);
    const bytes = await this.#encrypt(i);
    // The next range() of a resume starts in this chunk; it reports the tag if range() uses it.
    this.#cache = { index: i, bytes, reported: false };
    return bytes.slice(bytes.length - TAG_LENGTH);
  }

  /**
   * The chunk holding object octet `offset` (0 ≤ offset < totalLength). For an octet outside every
   * chunk (PKESK, packet headers, final tag) the chunk whose octets come next, chunkCount after
   * the last one: on resume that is the chunk re-encryption would start with.
   */
  chunkIndexAt(offset: number): number {
    const loc = locate(this.layout, offset);
    return loc.region === 'chunk' ? loc.chunk : loc.nextChunk;
  }

  /** Whether `index` names a chunk (chunkIndexAt gives chunkCount past the last one). */
  isDataChunk(index: number): boolean {
    return Number.isInteger(index) && index >= 0 && index < this.layout.chunkCount;
  }

  /** SEIPD body octets [b0, b1). */
  async *#body(b0: number, b1: number): AsyncGenerator<Uint8Array> {
    const layout = this.layout;
    if (b0 < SEIPD_PARAMS_LENGTH) {
      yield this.#params.subarray(b0, Math.min(b1, SEIPD_PARAMS_LENGTH));
      b0 = Math.min(b1, SEIPD_PARAMS_LENGTH);
    }
    const tagStart = finalTagBodyStart(layout);
    const chunksEnd = Math.min(b1, tagStart);
    if (b0 < chunksEnd) {
      const stride = layout.chunkSize + TAG_LENGTH;
      const first = Math.floor((b0 - SEIPD_PARAMS_LENGTH) / stride);
      const last = Math.floor((chunksEnd - 1 - SEIPD_PARAMS_LENGTH) / stride);
      // One chunk ahead: the next chunk's read and AES-GCM (both off the main thread) overlap the
      // consumer's work on this one, such as writing it to a socket.
      let next = this.#chunk(first);
      for (let i = first; i <= last; i++) {
        const bytes = await next;
        if (i < last) {
          next = this.#chunk(i + 1);
          next.catch(() => {}); // an abandoned generator never awaits it
        }
        this.#remember(i, bytes);
        const cs = chunkBodyStart(layout, i);
        yield bytes.subarray(b0 - cs, chunksEnd - cs);
        b0 = Math.min(chunksEnd, cs + bytes.length);
      }
    }
    if (b0 < b1) {
      this.#finalTag ??= this.#computeFinalTag();
      yield (await this.#finalTag).subarray(b0 - tagStart, b1 - tagStart);
    }
  }

  /** Chunk i's ciphertext ‖ tag, from the cache when it holds chunk i. */
  #chunk(i: number): Promise<Uint8Array> {
    const cached = this.#cache;
    return cached?.index === i ? Promise.resolve(cached.bytes) : this.#encrypt(i);
  }

  /** Caches chunk i and reports its tag once. */
  #remember(i: number, bytes: Uint8Array): void {
    if (this.#cache?.index !== i) this.#cache = { index: i, bytes, reported: false };
    if (this.#cache.reported) return;
    this.#cache.reported = true;
    this.#onChunkTag?.(i, bytes.slice(bytes.length - TAG_LENGTH));
  }

  /** Chunk i's ciphertext ‖ tag. */
  async #encrypt(i: number): Promise<Uint8Array> {
    const q0 = i * this.layout.chunkSize;
    const params = { name: 'AES-GCM', iv: chunkNonce(this.#iv, i), additionalData: this.#ad, tagLength: 128 };
    // The plaintext may be in the reused read buffer: the next chunk reads only once this one is
    // handed to encrypt(), which copies its input when called (WebCrypto's "get a copy of the bytes").
    const turn = this.#readTurn;
    let handedOver!: () => void;
    this.#readTurn = new Promise((resolve) => (handedOver = resolve));
    let sealed: Promise<ArrayBuffer>;
    try {
      await turn;
      const plain = await this.#plainChunk(q0, q0 + chunkPlainLength(this.layout, i));
      sealed = globalThis.crypto.subtle.encrypt(params, this.#key, ownBuffer(plain));
      // A sender keeps its files' encoders until the delivery is submitted: a sent file keeps no buffer.
      if (i === this.layout.chunkCount - 1) this.#readBuffer = undefined;
    } finally {
      handedOver();
    }
    return new Uint8Array(await sealed);
  }

  async #computeFinalTag(): Promise<Uint8Array> {
    const { chunkOctet, plaintextLength, chunkCount } = this.layout;
    const params = {
      name: 'AES-GCM',
      iv: chunkNonce(this.#iv, chunkCount),
      additionalData: finalAssociatedData(chunkOctet, plaintextLength),
      tagLength: 128,
    };
    return new Uint8Array(await globalThis.crypto.subtle.encrypt(params, this.#key, new Uint8Array(0)));
  }

  /** AEAD plaintext [q0, q1): the literal packet's tag, headers and prefix, and file bytes. */
  async #plainChunk(q0: number, q1: number): Promise<Uint8Array> {
    const prefixLength = this.#literalPrefix.length;
    type FileRange = { file: number; end: number };
    const parts: (Uint8Array | FileRange)[] = [];
    if (q0 === 0) parts.push(Uint8Array.of(LITERAL_TAG));
    for (const piece of framedPieces(this.layout.literal, Math.max(q0, 1) - 1, q1 - 1)) {
      if (piece.kind === 'header') {
        parts.push(piece.bytes);
        continue;
      }
      if (piece.start < prefixLength) parts.push(this.#literalPrefix.subarray(piece.start, Math.min(piece.end, prefixLength)));
      if (piece.end > prefixLength) parts.push({ file: Math.max(piece.start, prefixLength) - prefixLength, end: piece.end - prefixLength });
    }
    const files = parts.filter((p): p is FileRange => !(p instanceof Uint8Array));
    // Most chunks are file bytes only: encrypt what was read, no copy.
    if (files.length && parts.length === 1 && this.#readPlainInto) {
      this.#readBuffer ??= new Uint8Array(this.layout.chunkSize);
      const into = this.#readBuffer.subarray(0, q1 - q0);
      await this.#readPlainInto(into, files[0].file);
      return into;
    }
    const span = files.length ? await this.#read(files[0].file, files[files.length - 1].end) : undefined;
    if (span && parts.length === 1) return span;
    const out = new Uint8Array(q1 - q0);
    let o = 0;
    for (const p of parts) {
      const bytes = p instanceof Uint8Array ? p : span!.subarray(p.file - files[0].file, p.end - files[0].file);
      out.set(bytes, o);
      o += bytes.length;
    }
    return out;
  }

  async #read(start: number, end: number): Promise<Uint8Array> {
    const bytes = await this.#readPlain(start, end);
    if (bytes.length !== end - start) {
      throw new Error(`readPlain(${start}, ${end}) returned ${bytes.length} bytes: the file changed or was cut short`);
    }
    return bytes;
  }
}
