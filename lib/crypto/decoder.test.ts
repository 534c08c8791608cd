import assert from 'node:assert/strict';
import { createHash, randomInt } from 'node:crypto';
import { test } from 'node:test';
import * as openpgp from 'openpgp';
import { ObjectAuthError, ObjectFormatError, type ObjectSource, openStoredObject, verifyStoredObject } from './decoder';
import { FileEncoder, newFileEncryption } from './encoder';
import { type Framing, chunkBodyStart, computeLayout, framedStart, partialFrameCandidates } from './format';
import { collect, encode, memorySource, randomData, testKey } from './testing';

const key = await testKey();
const other = await testKey('Other mailbox');
const SMALL: Framing = { partialThreshold: 1000, partialExponent: 9 };

const isContentError = (e: unknown) => e instanceof ObjectFormatError || e instanceof ObjectAuthError;
const sha256 = (b: Uint8Array) => createHash('sha256').update(b).digest();

/** File sizes (searched, not guessed) whose SEIPD frame shares its length with another frame. */
function ambiguousSeipdSizes(framing: Framing, chunkOctet: number, nameLength: number): number[] {
  const found = new Map<number, number>(); // index of the true frame among the candidates → file size
  for (let f = framing.partialThreshold; found.size < 2 && f < 200_000; f++) {
    const l = computeLayout({ pkeskLength: 100, nameLength, fileSize: f, chunkOctet, framing });
    const c = partialFrameCandidates(l.seipd.framedLength, framing.partialExponent);
    if (c.length === 2) found.set(c.findIndex((x) => x.bodyLength === l.seipd.bodyLength), f);
  }
  return [...found.values()];
}

async function roundTrip(data: Uint8Array, opts: { name?: string; chunkOctet?: number; framing?: Framing; date?: Date }) {
  const { object } = await encode([key], data, opts);
  // Tiny pieces split headers and tags; large objects get larger ones to keep the test quick.
  const source = memorySource(object, object.length < 100_000 ? randomInt(1, 3000) : 65536);
  const obj = await openStoredObject(source, [other.privateKey, key.privateKey]);
  assert.equal(obj.fileSize, data.length);
  assert.equal(obj.name, opts.name ?? 'file.bin');
  assert.ok((await collect(obj.plaintext())).equals(data), `size ${data.length}`);
  for (let i = 0; i < 8; i++) {
    const a = randomInt(0, data.length + 1);
    const b = randomInt(a, data.length + 1);
    assert.ok((await collect(obj.plaintext(a, b))).equals(data.subarray(a, b)), `[${a}, ${b}) of ${data.length}`);
  }
  const verified = await verifyStoredObject(memorySource(object), [key.privateKey]);
  assert.deepEqual(verified, { fileSize: data.length, name: obj.name, date: obj.date, sha256: sha256(data) });
  return { object, obj };
}

test('the decoder reads what the encoder writes', async (t) => {
  await t.test('sizes around chunk boundaries, names and dates', async () => {
    const date = new Date('2023-01-02T03:04:05Z');
    for (const size of [0, 1, 63, 64, 65, 200, 1000]) await roundTrip(randomData(size), { chunkOctet: 0 });
    const { obj } = await roundTrip(randomData(1234), { chunkOctet: 1, name: 'Remiss – Åsa Öberg.pdf', date });
    assert.equal(obj.date.getTime(), date.getTime());
    await roundTrip(randomData(10), { chunkOctet: 0, name: '' });
    await roundTrip(randomData(300), { chunkOctet: 0, name: 'n'.repeat(255) });
  });

  await t.test('c = 16, several chunks', async () => {
    await roundTrip(randomData(2 * 4 * 2 ** 20 + 777), { name: 'röntgen.dcm' });
  });

  await t.test('partial lengths, including lengths two frames share', async () => {
    for (const size of [900, 3000, 10_000]) await roundTrip(randomData(size), { chunkOctet: 0, framing: SMALL });
    const framing = { partialThreshold: 20_000, partialExponent: 14 };
    const seg = 2 ** 14;
    // The literal packet's last segment nearly empty or nearly full.
    for (const R of [1, 3, seg - 2, seg]) {
      const fileSize = 2 * seg + R - 6 - 8;
      const layout = computeLayout({ pkeskLength: 100, nameLength: 8, fileSize, chunkOctet: 4, framing });
      assert.equal(partialFrameCandidates(layout.literal.framedLength, 14).length, 2);
      await roundTrip(randomData(fileSize), { chunkOctet: 4, framing });
    }
    // The same for the SEIPD packet, with either candidate the true one.
    const sizes = ambiguousSeipdSizes(framing, 4, 8);
    assert.equal(sizes.length, 2);
    for (const size of sizes) await roundTrip(randomData(size), { chunkOctet: 4, framing });
  });

  await t.test('a range reads only the chunks it needs', async () => {
    const data = randomData(20_000);
    const { object } = await encode([key], data, { chunkOctet: 0, framing: SMALL });
    const source = memorySource(object);
    const obj = await openStoredObject(source, [key.privateKey]);
    for (let i = 0; i < 20; i++) {
      const a = randomInt(0, data.length);
      const b = Math.min(data.length, a + randomInt(1, 300));
      source.reads.length = 0;
      assert.ok((await collect(obj.plaintext(a, b))).equals(data.subarray(a, b)));
      const read = source.reads.reduce((n, [s, e]) => n + e - s, 0);
      // Chunks of 64 octets (+16 tag): the range's own plus at most one partly used at each end.
      assert.ok(read <= (Math.ceil((b - a) / 64) + 2) * 80 + 4, `read ${read} octets for ${b - a}`);
    }
  });

  await t.test('verification reads the object about once', async () => {
    const data = randomData(50_000);
    const { object } = await encode([key], data, { chunkOctet: 2, framing: SMALL });
    const source = memorySource(object);
    await verifyStoredObject(source, [key.privateKey]);
    const read = source.reads.reduce((n, [s, e]) => n + e - s, 0);
    assert.ok(read <= object.length + 4096 + 64, `read ${read} of ${object.length}`);
  });
});

test('the decoder reads messages openpgp.js writes with the same profile', async () => {
  for (const size of [0, 10, 5000]) {
    const data = randomData(size);
    const message = await openpgp.createMessage({ binary: data, filename: 'from-openpgp.bin', date: new Date(1_700_000_000_000) });
    const object = await openpgp.encrypt({
      message,
      encryptionKeys: await openpgp.readKey({ armoredKey: key.publicKey }),
      format: 'binary',
      config: { preferredSymmetricAlgorithm: openpgp.enums.symmetric.aes256, preferredAEADAlgorithm: openpgp.enums.aead.gcm },
    });
    const verified = await verifyStoredObject(memorySource(object), [key.privateKey]);
    assert.equal(verified.name, 'from-openpgp.bin');
    assert.equal(verified.date.getTime(), 1_700_000_000_000);
    assert.ok(verified.sha256.equals(sha256(data)));
  }
});

test('a 5 GB object: partial lengths in both packets, offsets past 2^32', async () => {
  const F = 5_000_000_000;
  // Each octet depends on its offset, so a shifted range cannot match.
  const pattern = (s: number, e: number) => {
    const out = new Uint8Array(e - s);
    for (let i = 0; i < out.length; i++) out[i] = ((s + i) % 251) ^ (Math.floor((s + i) / 251) % 256);
    return out;
  };
  const encryption = await newFileEncryption({ publicKeys: [key.publicKey], name: 'big.iso', fileSize: F });
  const encoder = new FileEncoder({ ...encryption, readPlain: async (s, e) => pattern(s, e) });
  const { layout } = encoder;
  assert.ok(layout.literal.partials > 0 && layout.seipd.partials > 0);
  const source: ObjectSource = {
    size: encoder.totalLength,
    async read(start, end) {
      return (async function* () {
        for (let at = start; at < end; at += 2 ** 20) yield await encoder.range(at, Math.min(end, at + 2 ** 20));
      })();
    },
  };
  const obj = await openStoredObject(source, [key.privateKey]);
  assert.deepEqual([obj.fileSize, obj.name], [F, 'big.iso']);
  const cs = layout.chunkSize;
  const prefix = 6 + 7;
  // The chunk holding SEIPD body offset b, as a file range with some margin.
  const aroundBody = (b: number): [number, number] => {
    const i = Math.floor((b - 36) / (cs + 16));
    return [i * cs - prefix - 50, (i + 1) * cs - prefix + 50];
  };
  const ranges: [number, number][] = [
    [0, 100],
    [2 ** 30 - prefix - 100, 2 ** 30 - prefix + 100], // a literal partial header
    [4 * 2 ** 30 - prefix - 100, 4 * 2 ** 30 - prefix + 100], // the literal's last definite header
    aroundBody(2 ** 30), // a SEIPD partial header
    aroundBody(layout.seipd.partials * 2 ** 30), // the SEIPD's last definite header
    [2 ** 32 - 10, 2 ** 32 + 10],
    [F - 1000, F],
  ];
  for (const [a, b] of ranges) assert.ok((await collect(obj.plaintext(a, b))).equals(pattern(a, b)), `[${a}, ${b})`);
});

test('altered, cut or extended objects are refused', async (t) => {
  const data = randomData(3000);
  const plain = await encode([key], data, { chunkOctet: 0 });
  const partial = await encode([key], data, { chunkOctet: 0, framing: SMALL });
  const layout = computeLayout({
    pkeskLength: plain.encryption.header.pkesk.length,
    nameLength: 8,
    fileSize: data.length,
    chunkOctet: 0,
  });
  const at = (b: number) => layout.pkeskLength + 1 + framedStart(layout.seipd, b);
  const params = at(0) + layout.seipd.lastHeader.length; // version, cipher, mode, chunk size octet, salt
  const flipped = (object: Uint8Array, i: number) => {
    const copy = Uint8Array.from(object);
    copy[i] ^= 0x40;
    return copy;
  };

  await t.test('a changed chunk fails when read, releasing nothing of it', async () => {
    for (const offset of [0, 63, 64 + 5]) {
      // Chunk 5: its ciphertext (offset < 64) or its tag.
      const object = flipped(plain.object, at(chunkBodyStart(layout, 5)) + offset);
      const obj = await openStoredObject(memorySource(object), [key.privateKey]);
      let released = 0;
      await assert.rejects(
        (async () => {
          for await (const piece of obj.plaintext()) released += piece.length;
        })(),
        ObjectAuthError,
      );
      assert.ok(released <= 5 * 64, `released ${released} octets`);
      await assert.rejects(verifyStoredObject(memorySource(object), [key.privateKey]), ObjectAuthError);
      // A range that avoids chunk 5 still reads.
      assert.ok((await collect(obj.plaintext(0, 100))).equals(data.subarray(0, 100)));
    }
  });

  await t.test('a changed first chunk or final tag fails on open', async () => {
    for (const i of [at(chunkBodyStart(layout, 0)) + 3, plain.object.length - 1, plain.object.length - 16]) {
      await assert.rejects(openStoredObject(memorySource(flipped(plain.object, i)), [key.privateKey]), ObjectAuthError);
    }
  });

  await t.test('changed headers', async () => {
    const pk = layout.pkeskLength;
    await assert.rejects(openStoredObject(memorySource(flipped(plain.object, pk)), [key.privateKey]), ObjectFormatError, 'SEIPD tag');
    await assert.rejects(openStoredObject(memorySource(flipped(plain.object, pk + 1)), [key.privateKey]), ObjectFormatError, 'length');
    await assert.rejects(openStoredObject(memorySource(flipped(plain.object, params)), [key.privateKey]), ObjectFormatError, 'version');
    await assert.rejects(openStoredObject(memorySource(flipped(plain.object, params + 1)), [key.privateKey]), ObjectFormatError, 'cipher');
    await assert.rejects(openStoredObject(memorySource(flipped(plain.object, params + 2)), [key.privateKey]), ObjectFormatError, 'mode');
    await assert.rejects(openStoredObject(memorySource(flipped(plain.object, params + 3)), [key.privateKey]), ObjectFormatError, 'c > 16');
    await assert.rejects(openStoredObject(memorySource(flipped(plain.object, 0)), [key.privateKey]), ObjectFormatError, 'PKESK tag');
    await assert.rejects(openStoredObject(memorySource(flipped(plain.object, 2)), [key.privateKey]), ObjectFormatError, 'PKESK version');
    const otherC = Uint8Array.from(plain.object);
    otherC[params + 3] = 1;
    await assert.rejects(openStoredObject(memorySource(otherC), [key.privateKey]), isContentError, 'another chunk size');
    for (const i of [params + 4, params + 35, pk - 5, 40]) {
      // Salt, inside the PKESK: the keys no longer fit.
      await assert.rejects(openStoredObject(memorySource(flipped(plain.object, i)), [key.privateKey]), isContentError, `octet ${i}`);
    }
    // A partial length header in the middle: found when the stream passes it.
    const pl = computeLayout({ pkeskLength: layout.pkeskLength, nameLength: 8, fileSize: data.length, chunkOctet: 0, framing: SMALL });
    const header = pl.pkeskLength + 1 + 2 * (pl.seipd.segmentLength + 1);
    assert.equal(partial.object[header], 0xe9);
    const bad = flipped(partial.object, header);
    await assert.rejects(verifyStoredObject(memorySource(bad), [key.privateKey]), ObjectFormatError);
  });

  await t.test('truncation and trailing data', async () => {
    for (const { object } of [plain, partial]) {
      for (const cut of [1, 15, 16, 17, 80, 81, 1000]) {
        await assert.rejects(verifyStoredObject(memorySource(object.subarray(0, object.length - cut)), [key.privateKey]), isContentError, `cut ${cut}`);
      }
      for (const extra of [1, 16, 80, 1000]) {
        const longer = Buffer.concat([object, randomData(extra)]);
        await assert.rejects(verifyStoredObject(memorySource(longer), [key.privateKey]), isContentError, `extra ${extra}`);
      }
      await assert.rejects(verifyStoredObject(memorySource(object.subarray(0, 50)), [key.privateKey]), ObjectFormatError);
      await assert.rejects(verifyStoredObject(memorySource(new Uint8Array(0)), [key.privateKey]), ObjectFormatError);
    }
  });

  await t.test('a source that delivers less than asked', async () => {
    const source = memorySource(plain.object);
    const short: ObjectSource = {
      size: source.size,
      read: async (s, e) => source.read(s, s < 2000 ? e : e - 1),
    };
    await assert.rejects(verifyStoredObject(short, [key.privateKey]), ObjectFormatError);
  });

  await t.test('a key the object is not for', async () => {
    await assert.rejects(openStoredObject(memorySource(plain.object), [other.privateKey]), ObjectAuthError);
  });

  await t.test('bad ranges', async () => {
    const obj = await openStoredObject(memorySource(plain.object), [key.privateKey]);
    for (const [a, b] of [[-1, 5], [5, 4], [0, data.length + 1], [0.5, 3]]) {
      await assert.rejects(collect(obj.plaintext(a, b)), RangeError);
    }
  });
});
