import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { test } from 'node:test';
import * as openpgp from 'openpgp';
import { type Manifest, ManifestError, decryptManifest, encryptManifest } from './manifest';
import { testKey } from './testing';

const key = await testKey();
const other = await testKey('Other');

const manifest: Manifest = {
  version: 1,
  subject: 'Remiss: Åsa Öberg',
  message: 'Hej!\nHär kommer bilderna.',
  files: [
    { uploadId: 'a1b2c3', name: 'röntgen.dcm', type: 'application/dicom', size: 5_000_000_000, sha256: createHash('sha256').update('x').digest('hex') },
    { uploadId: 'd4e5f6', name: 'tom.txt', type: '', size: 0, sha256: createHash('sha256').update('').digest('hex') },
  ],
};

async function encryptRaw(text: string): Promise<Uint8Array> {
  const message = await openpgp.createMessage({ binary: new TextEncoder().encode(text) });
  const encryptionKeys = await openpgp.readKey({ armoredKey: key.publicKey });
  return openpgp.encrypt({ message, encryptionKeys, format: 'binary' });
}

test('a manifest round-trips', async () => {
  const bytes = await encryptManifest(manifest, [key.publicKey, other.publicKey]);
  assert.ok(!Buffer.from(bytes).includes(Buffer.from('röntgen')), 'encrypted');
  assert.deepEqual(await decryptManifest(bytes, [key.privateKey]), manifest);
  assert.deepEqual(await decryptManifest(bytes, [other.privateKey]), manifest);
});

test('bad manifests are refused with the reason', async () => {
  const file = manifest.files[0];
  const bad: [unknown, RegExp][] = [
    [{ ...manifest, version: 2 }, /version/],
    [{ ...manifest, subject: 's'.repeat(201) }, /subject/],
    [{ ...manifest, message: 'm'.repeat(10_001) }, /message/],
    [{ ...manifest, files: Array.from({ length: 1001 }, () => file) }, /files/],
    [{ ...manifest, files: [{ ...file, name: 'ä'.repeat(128) }] }, /255 UTF-8 bytes/],
    [{ ...manifest, files: [{ ...file, name: '' }] }, /name/],
    [{ ...manifest, files: [{ ...file, type: 't'.repeat(256) }] }, /type/],
    [{ ...manifest, files: [{ ...file, sha256: file.sha256.toUpperCase() }] }, /sha256/],
    [{ ...manifest, files: [{ ...file, sha256: file.sha256.slice(1) }] }, /sha256/],
    [{ ...manifest, files: [{ ...file, size: -1 }] }, /size/],
    [{ ...manifest, files: [{ ...file, size: 1.5 }] }, /size/],
    [{ ...manifest, files: [{ ...file, uploadId: 'u'.repeat(129) }] }, /uploadId/],
    [{ ...manifest, files: [{ ...file, extra: 1 }] }, /extra|unrecognized/i],
    [{ ...manifest, subject: undefined }, /subject/],
    [[], /root|expected object/i],
  ];
  for (const [value, reason] of bad) {
    await assert.rejects(decryptManifest(await encryptRaw(JSON.stringify(value)), [key.privateKey]), (e: Error) => {
      assert.ok(e instanceof ManifestError, e.message);
      assert.match(e.message, reason);
      return true;
    });
  }
  assert.ok(await decryptManifest(await encryptRaw(JSON.stringify({ ...manifest, files: [{ ...file, name: 'ä'.repeat(127) }] })), [key.privateKey]));
  await assert.rejects(encryptManifest({ ...manifest, subject: 's'.repeat(201) }, [key.publicKey]), ManifestError);
});

test('unreadable manifests are refused', async () => {
  await assert.rejects(decryptManifest(await encryptRaw('{"version": 1,'), [key.privateKey]), /not JSON/);
  await assert.rejects(decryptManifest(new Uint8Array([1, 2, 3]), [key.privateKey]), ManifestError);
  const bytes = await encryptManifest(manifest, [key.publicKey]);
  await assert.rejects(decryptManifest(bytes, [other.privateKey]), ManifestError);
  const altered = Uint8Array.from(bytes);
  altered[altered.length - 20] ^= 1;
  await assert.rejects(decryptManifest(altered, [key.privateKey]), ManifestError);
});
