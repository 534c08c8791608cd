import assert from 'node:assert/strict';
import { randomInt } from 'node:crypto';
import { test } from 'node:test';
import * as openpgp from 'openpgp';
import { FileEncoder, newFileEncryption } from './encoder';
import { type Framing, computeLayout, frameHeaders, framedStart } from './format';
import { type TestKey, encode, encoderFor, randomData, testKey } from './testing';

const SMALL: Framing = { partialThreshold: 1000, partialExponent: 9 };

async function oracle(object: Uint8Array, key: TestKey) {
  const message = await openpgp.readMessage({ binaryMessage: object });
  const { data, filename } = await openpgp.decrypt({ message, decryptionKeys: key.privateKey, format: 'binary' });
  return { data: Buffer.from(data), filename };
}

/** File sizes that put the AEAD plaintext P at chunk − 1, chunk, chunk + 1 and three chunks exactly. */
function boundarySizes(nameLength: number, chunkOctet: number, framing?: Framing): number[] {
  const cs = 2 ** (chunkOctet + 6);
  const out: number[] = [];
  for (const P of [cs - 1, cs, cs + 1, 3 * cs]) {
    const F = [0, 1, 2, 3, 4, 5].map((d) => P - 7 - nameLength - d).find(
      (f) => f >= 0 && computeLayout({ pkeskLength: 100, nameLength, fileSize: f, chunkOctet, framing }).plaintextLength === P,
    );
    if (F !== undefined) out.push(F);
  }
  return out;
}

const key = await testKey();
const second = await testKey('Second mailbox');

test('openpgp.js decrypts what the encoder writes', async (t) => {
  await t.test('small chunks, sizes around chunk boundaries', async () => {
    const name = 'rapport.pdf';
    const sizes = [0, 1, 63, 64, 65, 5 * 64 + 3, ...boundarySizes(name.length, 0)];
    for (const size of sizes) {
      const data = randomData(size);
      const { object } = await encode([key], data, { name, chunkOctet: 0 });
      const out = await oracle(object, key);
      assert.ok(out.data.equals(data), `size ${size}`);
      assert.equal(out.filename, name);
    }
  });

  await t.test('c = 2 and a UTF-8 name of 255 bytes, two recipients', async () => {
    const name = 'å'.repeat(127) + 'x';
    const data = randomData(3 * 256 + 17);
    const { object, encryption } = await encode([key, second], data, { name, chunkOctet: 2, date: new Date('2024-05-06T07:08:09Z') });
    assert.equal(encryption.header.name.length, 255);
    for (const k of [key, second]) {
      const out = await oracle(object, k);
      assert.ok(out.data.equals(data));
      assert.equal(out.filename, name);
    }
    const { packets } = await openpgp.readMessage({ binaryMessage: object });
    assert.equal(packets.filterByTag(openpgp.enums.packet.publicKeyEncryptedSessionKey).length, 2);
  });

  await t.test('c = 16 as stored, a few MiB', async () => {
    const data = randomData(9 * 2 ** 20 + 12345);
    const { object, encryption } = await encode([key], data, { name: 'scan.tiff' });
    const layout = computeLayout({ pkeskLength: encryption.header.pkesk.length, nameLength: 9, fileSize: data.length });
    assert.equal(layout.chunkCount, 3);
    assert.equal(object.length, layout.total);
    assert.ok((await oracle(object, key)).data.equals(data));
  });

  await t.test('partial lengths in one or both packets', async () => {
    const cases = [
      { size: 900, literalPartial: false },
      { size: 3000, literalPartial: true },
      { size: 40_000, literalPartial: true },
    ];
    for (const c of cases) {
      const data = randomData(c.size);
      const { object, encryption } = await encode([key], data, { chunkOctet: 0, framing: SMALL });
      const layout = computeLayout({ pkeskLength: encryption.header.pkesk.length, nameLength: 8, fileSize: c.size, chunkOctet: 0, framing: SMALL });
      assert.equal(layout.literal.partials > 0, c.literalPartial, `size ${c.size}`);
      assert.ok(layout.seipd.partials > 0);
      // Every SEIPD length header sits where the layout says.
      for (const h of frameHeaders(layout.seipd)) {
        const at = layout.pkeskLength + 1 + h.offset;
        assert.deepEqual([...object.subarray(at, at + h.bytes.length)], [...h.bytes]);
      }
      assert.ok((await oracle(object, key)).data.equals(data), `size ${c.size}`);
    }
  });

  await t.test('partial lengths whose last segment is nearly full or nearly empty', async () => {
    const framing = { partialThreshold: 20_000, partialExponent: 14 };
    const seg = 2 ** 14;
    // Last segments of seg − 2 .. seg or 1 .. 3 octets: the lengths a reader cannot tell apart by size.
    for (const R of [1, 3, seg - 2, seg]) {
      const fileSize = 2 * seg + R - 6 - 8;
      const data = randomData(fileSize);
      const { object, encryption } = await encode([key], data, { chunkOctet: 4, framing });
      const layout = computeLayout({ pkeskLength: encryption.header.pkesk.length, nameLength: 8, fileSize, chunkOctet: 4, framing });
      assert.equal(layout.literal.lastLength, R);
      assert.ok((await oracle(object, key)).data.equals(data), `R=${R}`);
    }
  });
});

test('ranges', async (t) => {
  const data = randomData(5000);
  const { object, encryption } = await encode([key], data, { chunkOctet: 0, framing: SMALL });

  await t.test('any range from a fresh encoder equals the single pass', async () => {
    for (let i = 0; i < 60; i++) {
      const a = randomInt(0, object.length + 1);
      const b = Math.min(object.length, a + randomInt(0, i % 2 ? 200 : object.length));
      const bytes = await encoderFor(encryption, data).range(a, b);
      assert.ok(Buffer.from(bytes).equals(object.subarray(a, b)), `[${a}, ${b})`);
    }
    await assert.rejects(encoderFor(encryption, data).range(0, object.length + 1), RangeError);
    await assert.rejects(encoderFor(encryption, data).range(10, 9), RangeError);
  });

  await t.test('pieces of any range are its bytes, none longer than one chunk and its tag', async () => {
    const encoder = encoderFor(encryption, data);
    const stride = encoder.layout.chunkSize + 16;
    for (let i = 0; i < 40; i++) {
      const a = randomInt(0, object.length + 1);
      const b = Math.min(object.length, a + randomInt(0, object.length));
      const pieces: Uint8Array[] = [];
      for await (const piece of encoder.pieces(a, b)) pieces.push(piece);
      assert.ok(Buffer.concat(pieces).equals(object.subarray(a, b)), `[${a}, ${b})`);
      assert.ok(pieces.every((p) => p.length <= Math.max(stride, encryption.header.pkesk.length)), `[${a}, ${b})`);
    }
    await assert.rejects(encoder.pieces(0, object.length + 1).next(), RangeError);
  });

  await t.test('with one reused read buffer, ranges encrypted at once are still the single pass', async () => {
    const encoder = new FileEncoder({
      ...encryption,
      readPlain: async (s, e) => data.subarray(s, e),
      // As from the file system's thread: the bytes land, the read reports done later. Another
      // chunk's read must not overwrite them before they are encrypted.
      readPlainInto: async (target, s) => {
        target.set(data.subarray(s, s + target.length));
        await new Promise((r) => setTimeout(r, randomInt(0, 3)));
      },
    });
    const cuts = [0, ...Array.from({ length: 7 }, () => randomInt(0, object.length + 1)).sort((a, b) => a - b), object.length];
    const parts = await Promise.all(cuts.slice(1).map((end, k) => encoder.range(cuts[k], end)));
    assert.ok(Buffer.concat(parts).equals(object));
  });

  await t.test('consecutive slices encrypt each chunk once and report every tag once', async () => {
    const reads: [number, number][] = [];
    const tags = new Map<number, Uint8Array>();
    const encoder = new FileEncoder({
      ...encryption,
      readPlain: async (s, e) => (reads.push([s, e]), data.subarray(s, e)),
      onChunkTag: (i, tag) => {
        assert.ok(!tags.has(i), `tag ${i} reported twice`);
        tags.set(i, tag);
      },
    });
    const parts: Uint8Array[] = [];
    for (let at = 0; at < encoder.totalLength; ) {
      const end = Math.min(encoder.totalLength, at + randomInt(1, 300));
      parts.push(await encoder.range(at, end));
      at = end;
    }
    assert.ok(Buffer.concat(parts).equals(object));
    const { chunkCount } = encoder.layout;
    assert.equal(tags.size, chunkCount);
    // Every chunk holds file bytes: one read each, none twice.
    assert.equal(reads.length, chunkCount);
    for (const [i, tag] of tags) {
      assert.deepEqual(await encoderFor(encryption, data).chunkTag(i), tag, `chunk ${i}`);
      assert.equal(tag.buffer.byteLength, 16, 'a reported tag does not hold on to its chunk');
    }
  });

  await t.test('chunkIndexAt and isDataChunk', async () => {
    const encoder = encoderFor(encryption, data);
    const { layout } = encoder;
    assert.equal(encoder.chunkIndexAt(0), 0, 'inside the PKESK: the first chunk comes next');
    assert.equal(encoder.chunkIndexAt(encoder.totalLength - 1), layout.chunkCount, 'the final tag: no chunk follows');
    assert.ok(!encoder.isDataChunk(layout.chunkCount));
    assert.ok(encoder.isDataChunk(0));
    for (const i of [0, 1, Math.floor(layout.chunkCount / 2), layout.chunkCount - 1]) {
      // Where chunk i starts (or a length header just before it) and its tag's last octet.
      const first = layout.pkeskLength + 1 + framedStart(layout.seipd, 36 + i * 80);
      const tagEnd = 36 + i * 80 + Math.min(64, layout.plaintextLength - i * 64) + 16;
      const last = layout.pkeskLength + 1 + framedStart(layout.seipd, tagEnd) - 1;
      assert.equal(encoder.chunkIndexAt(first), i, `first octet of chunk ${i}`);
      assert.equal(encoder.chunkIndexAt(last), i, `last octet of chunk ${i}`);
    }
    assert.throws(() => encoder.chunkIndexAt(encoder.totalLength), RangeError);
  });

  await t.test('a chunk tag changes when the file does', async () => {
    const changed = Uint8Array.from(data);
    changed[3000] ^= 1;
    const i = Math.floor((3000 + 20) / 64);
    const tags = await Promise.all([i - 1, i, i + 1].map((j) => encoderFor(encryption, changed).chunkTag(j)));
    const orig = await Promise.all([i - 1, i, i + 1].map((j) => encoderFor(encryption, data).chunkTag(j)));
    assert.equal(tags.filter((tag, k) => !Buffer.from(tag).equals(orig[k])).length, 1);
  });

  await t.test('a short read from the file is an error', async () => {
    const encoder = new FileEncoder({ ...encryption, readPlain: async (s, e) => data.subarray(s, e - 1) });
    await assert.rejects(encoder.range(0, encoder.totalLength), /changed or was cut short/);
  });
});

test('new file encryption', async (t) => {
  await t.test('the message key cannot be exported', async () => {
    const { messageKey, iv, header } = await newFileEncryption({ publicKeys: [key.publicKey], name: 'a', fileSize: 1 });
    assert.equal(messageKey.extractable, false);
    assert.deepEqual(messageKey.usages, ['encrypt']);
    await assert.rejects(crypto.subtle.exportKey('raw', messageKey));
    assert.equal(iv.length, 4);
    assert.equal(header.salt.length, 32);
    assert.equal(header.pkesk[0], 0xc1, 'a PKESK packet');
    assert.equal(header.pkesk[2], 6, 'version 6');
    assert.deepEqual(structuredClone(header), header, 'the header is plain data');
  });

  await t.test('every file gets its own session key and salt', async () => {
    const a = await encode([key], randomData(10));
    const b = await encode([key], randomData(10));
    assert.ok(!Buffer.from(a.encryption.header.salt).equals(b.encryption.header.salt));
    assert.ok(!Buffer.from(a.encryption.header.pkesk).equals(b.encryption.header.pkesk));
  });

  await t.test('a key without SEIPDv2 is refused', async () => {
    const { publicKey } = await openpgp.generateKey({ type: 'curve25519', userIDs: [{ name: 'old' }], format: 'armored' });
    await assert.rejects(
      newFileEncryption({ publicKeys: [key.publicKey, publicKey], name: 'a', fileSize: 1 }),
      /does not advertise SEIPDv2/,
    );
  });

  await t.test('bad names, sizes and parameters are refused', async () => {
    const base = { publicKeys: [key.publicKey], name: 'a', fileSize: 1 };
    await assert.rejects(newFileEncryption({ ...base, name: 'ä'.repeat(128) }), /255/);
    await assert.rejects(newFileEncryption({ ...base, fileSize: -1 }), RangeError);
    await assert.rejects(newFileEncryption({ ...base, fileSize: 1.5 }), RangeError);
    await assert.rejects(newFileEncryption({ ...base, chunkOctet: 17 }), RangeError);
    await assert.rejects(newFileEncryption({ ...base, publicKeys: [] }), /public key/);
  });
});
