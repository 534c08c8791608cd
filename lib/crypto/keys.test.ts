import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { test } from 'node:test';
import * as openpgp from 'openpgp';
import { newFileEncryption } from './encoder';
import { KeyUnwrapError, generateMailboxKey, readPrivateKeys, unwrapPrivateKey, wrapPrivateKey } from './keys';

test('a mailbox key is v6 curve25519 and advertises SEIPDv2', async () => {
  const key = await generateMailboxKey('Avdelning 5');
  const pub = await openpgp.readKey({ armoredKey: key.publicKey });
  assert.equal(pub.keyPacket.version, 6);
  assert.equal(pub.getAlgorithmInfo().algorithm, 'ed25519');
  assert.match(key.fingerprint, /^[0-9a-f]{64}$/);
  assert.equal(key.fingerprint, pub.getFingerprint());
  const sig = await (pub as openpgp.Key & { getPrimarySelfSignature(): Promise<{ features: number[] }> }).getPrimarySelfSignature();
  assert.ok(sig.features[0] & 0x08);
  assert.deepEqual(pub.getUserIDs(), ['Avdelning 5']);
  const [priv] = await readPrivateKeys([key.privateKey]);
  assert.equal(priv.getFingerprint(), key.fingerprint);
  // The encoder accepts it.
  await newFileEncryption({ publicKeys: [key.publicKey], name: 'a', fileSize: 0 });
});

test('readPrivateKeys refuses passphrase-protected keys', async () => {
  const { privateKey } = await openpgp.generateKey({
    type: 'curve25519',
    userIDs: [{ name: 'x' }],
    passphrase: 'secret',
    config: { aeadProtect: true, v6Keys: true },
  });
  await assert.rejects(readPrivateKeys([privateKey]), /passphrase/);
});

test('wrapping a private key', async () => {
  const master = randomBytes(32);
  const armored = (await generateMailboxKey('M')).privateKey;
  const wrapped = wrapPrivateKey(master, 'mk-1', armored);
  assert.equal(wrapped[0], 1, 'version');
  assert.equal(wrapped.length, 1 + 12 + Buffer.byteLength(armored) + 16);
  assert.ok(!wrapped.includes(Buffer.from('PRIVATE KEY')));
  assert.equal(unwrapPrivateKey(master, 'mk-1', wrapped), armored);
  assert.ok(!wrapPrivateKey(master, 'mk-1', armored).equals(wrapped), 'a fresh nonce each time');

  assert.throws(() => unwrapPrivateKey(randomBytes(32), 'mk-1', wrapped), KeyUnwrapError);
  assert.throws(() => unwrapPrivateKey(master, 'mk-2', wrapped), KeyUnwrapError);
  for (const i of [1, 13, wrapped.length - 1]) {
    const altered = Buffer.from(wrapped);
    altered[i] ^= 1;
    assert.throws(() => unwrapPrivateKey(master, 'mk-1', altered), KeyUnwrapError, `octet ${i}`);
  }
  const otherVersion = Buffer.from(wrapped);
  otherVersion[0] = 2;
  assert.throws(() => unwrapPrivateKey(master, 'mk-1', otherVersion), /version/);
  assert.throws(() => unwrapPrivateKey(master, 'mk-1', wrapped.subarray(0, 20)), KeyUnwrapError);
  assert.throws(() => wrapPrivateKey(randomBytes(16), 'mk-1', armored), RangeError);
});
