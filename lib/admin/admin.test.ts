/**
 * Mailbox administration in process: link rotation and switching off, policies, key rotation
 * (old and new deliveries stay readable), master key rotation, key export — refusals included,
 * every change audited and the audit chain intact.
 */
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import { test } from 'node:test';
import * as openpgp from 'openpgp';
import { verifyAuditLog } from '@/lib/audit';
import { bootProcess } from '@/lib/boot';
import { openStoredObject } from '@/lib/crypto/decoder';
import { newFileEncryption } from '@/lib/crypto/encoder';
import { readPrivateKeys } from '@/lib/crypto/keys';
import { collect, encoderFor, memorySource } from '@/lib/crypto/testing';
import { db } from '@/lib/db';
import { createDelivery, DeliveryError } from '@/lib/deliveries';
import { createSharedMailbox, findFiledropMailbox, mailboxPrivateKeys, mailboxPublicKeys } from '@/lib/mailboxes';
import { masterKey, masterKeyFrom, UnknownMasterKeyError } from '@/lib/mailboxes/master-key';
import { useFreshProcessState } from '@/lib/testing/process';
import { exportMailboxKey, rotateFiledropLink, rotateMailboxKey, rotateMasterKey, setFiledropEnabled, setMailboxPolicy } from './index';
import { OfflineError, readExportedKeys } from './offline';
import { rejectsWithMailboxError as rejects } from '@/lib/testing/refusals';

const ADMIN = 'system';

async function encryptTo(publicKeys: string[], data: Uint8Array, name: string): Promise<Uint8Array> {
  const encryption = await newFileEncryption({ publicKeys, name, fileSize: data.length });
  const encoder = encoderFor(encryption, data);
  return encoder.range(0, encoder.totalLength);
}

async function openWith(object: Uint8Array, keys: openpgp.PrivateKey[]): Promise<{ name: string; data: Buffer }> {
  const o = await openStoredObject(memorySource(object), keys);
  return { name: o.name, data: await collect(o.plaintext()) };
}

async function lastAudit(action: string) {
  return (
    await (await db()).query<{ actor: string; target: string; detail: Record<string, unknown> }>(
      'SELECT actor, target, detail FROM audit_log WHERE action = $1 ORDER BY id DESC LIMIT 1',
      [action],
    )
  ).rows[0];
}

test('mailbox administration', async (t) => {
  const { dataDir } = await useFreshProcessState();
  await bootProcess({ worker: false });
  const mailbox = await createSharedMailbox({ name: 'Remisser' });
  const q = await db();

  await t.test('rotating the link stops the old one at once, like a link that never existed', async () => {
    const oldSlug = mailbox.filedrop_slug;
    assert.ok(await findFiledropMailbox(oldSlug));
    const rotated = await rotateFiledropLink(mailbox.id, ADMIN);
    assert.notEqual(rotated.filedrop_slug, oldSlug);
    assert.equal(await findFiledropMailbox(oldSlug), null);
    assert.equal((await findFiledropMailbox(rotated.filedrop_slug))?.id, mailbox.id);
    await assert.rejects(createDelivery({ slug: oldSlug, senderEmail: 'a@example.org' }), (err: unknown) => {
      assert.ok(err instanceof DeliveryError);
      assert.equal(err.code, 'unknown-link');
      return true;
    });
    const entry = await lastAudit('mailbox.link-rotated');
    assert.equal(entry.target, `mailbox:${mailbox.id}`);
    assert.ok(!JSON.stringify(entry).includes(oldSlug) && !JSON.stringify(entry).includes(rotated.filedrop_slug), 'no slug in the audit log');
    mailbox.filedrop_slug = rotated.filedrop_slug;
  });

  await t.test('a disabled link looks unknown and comes back when enabled', async () => {
    await setFiledropEnabled(mailbox.id, false, ADMIN);
    assert.equal(await findFiledropMailbox(mailbox.filedrop_slug), null);
    assert.ok(await lastAudit('mailbox.link-disabled'));
    await setFiledropEnabled(mailbox.id, true, ADMIN);
    assert.equal((await findFiledropMailbox(mailbox.filedrop_slug))?.id, mailbox.id);
    assert.ok(await lastAudit('mailbox.link-enabled'));
  });

  await t.test('refusals: unknown mailbox, bad actor', async () => {
    await rejects(rotateFiledropLink(crypto.randomUUID(), ADMIN), 404, 'unknown-mailbox');
    await rejects(setFiledropEnabled(crypto.randomUUID(), false, ADMIN), 404, 'unknown-mailbox');
    await assert.rejects(rotateFiledropLink(mailbox.id, 'someone'), TypeError);
  });

  await t.test('policies are validated, applied and audited', async () => {
    const m = await setMailboxPolicy(mailbox.id, { requireVerifiedSender: true, maxDeliveryBytes: 1_000_000, maxFilesPerDelivery: 5, retentionDays: 7 }, ADMIN);
    assert.equal(m.require_verified_sender, true);
    assert.equal(Number(m.max_delivery_bytes), 1_000_000);
    assert.equal(m.max_files_per_delivery, 5);
    assert.equal(m.retention_days, 7);
    const f = await findFiledropMailbox(mailbox.filedrop_slug);
    assert.equal(f?.requireVerifiedSender, true);
    assert.equal(f?.maxFiles, 5);
    assert.deepEqual((await lastAudit('mailbox.policy-changed')).detail, {
      requireVerifiedSender: true,
      maxDeliveryBytes: 1_000_000,
      maxFilesPerDelivery: 5,
      retentionDays: 7,
    });
    const only = await setMailboxPolicy(mailbox.id, { retentionDays: 30 }, ADMIN);
    assert.equal(only.retention_days, 30);
    assert.equal(only.max_files_per_delivery, 5, 'settings not given are kept');

    for (const bad of [{}, { retentionDays: 0 }, { maxDeliveryBytes: -1 }, { maxFilesPerDelivery: 1.5 }, { retentionDays: 99999 }, { colour: 'red' }, { requireVerifiedSender: 'yes' }]) {
      await rejects(setMailboxPolicy(mailbox.id, bad as never, ADMIN), 400, 'invalid-policy');
    }
    assert.equal((await q.query<{ retention_days: number }>('SELECT retention_days FROM mailboxes WHERE id = $1', [mailbox.id])).rows[0].retention_days, 30);
    await rejects(setMailboxPolicy(crypto.randomUUID(), { retentionDays: 3 }, ADMIN), 404, 'unknown-mailbox');
    await setMailboxPolicy(mailbox.id, { requireVerifiedSender: false }, ADMIN);
  });

  const before = new TextEncoder().encode('sent before the rotation');
  const after = new TextEncoder().encode('sent after the rotation');
  let oldObject: Uint8Array;
  let newObject: Uint8Array;

  await t.test('key rotation: new deliveries use the new key, old and new both stay readable', async () => {
    const [oldPublic] = await mailboxPublicKeys(q, mailbox.id);
    oldObject = await encryptTo([oldPublic], before, 'before.txt');
    const rotated = await rotateMailboxKey(mailbox.id, ADMIN);
    const publics = await mailboxPublicKeys(q, mailbox.id);
    assert.equal(publics.length, 1);
    assert.notEqual(publics[0], oldPublic);
    assert.deepEqual((await findFiledropMailbox(mailbox.filedrop_slug))?.publicKeys, publics);
    newObject = await encryptTo(publics, after, 'after.txt');
    const keys = await readPrivateKeys(await mailboxPrivateKeys(q, mailbox.id));
    assert.equal(keys.length, 2);
    assert.deepEqual(await openWith(oldObject, keys), { name: 'before.txt', data: Buffer.from(before) });
    assert.deepEqual(await openWith(newObject, keys), { name: 'after.txt', data: Buffer.from(after) });
    const rows = (await q.query<{ fingerprint: string; active: boolean }>('SELECT fingerprint, active FROM mailbox_keys WHERE mailbox_id = $1', [mailbox.id])).rows;
    assert.deepEqual(rows.filter((r) => r.active).map((r) => r.fingerprint), [rotated.fingerprint]);
    assert.equal(rotated.previousFingerprints.length, 1);
    assert.equal((await lastAudit('mailbox.key-rotated')).detail.fingerprint, rotated.fingerprint);
    await rejects(rotateMailboxKey(crypto.randomUUID(), ADMIN), 404, 'unknown-mailbox');
  });

  await t.test('key export: passphrase-protected keys that open old and new deliveries', async () => {
    const passphrase = 'correct horse battery staple';
    const exported = await exportMailboxKey(mailbox.id, passphrase, ADMIN);
    assert.equal(exported.fingerprints.length, 2);
    assert.equal(exported.armored.match(/BEGIN PGP PRIVATE KEY BLOCK/g)?.length, 2);
    for (const armoredKey of exported.armored.match(/-----BEGIN[\s\S]*?END PGP PRIVATE KEY BLOCK-----/g)!) {
      assert.equal((await openpgp.readPrivateKey({ armoredKey })).isDecrypted(), false, 'exported keys are encrypted');
    }
    const keys = await readExportedKeys(exported.armored, passphrase);
    assert.equal((await openWith(oldObject, keys)).name, 'before.txt');
    assert.equal((await openWith(newObject, keys)).name, 'after.txt');
    await assert.rejects(readExportedKeys(exported.armored, 'wrong passphrase!!'), OfflineError);
    await assert.rejects(readExportedKeys('not a key', passphrase), OfflineError);
    assert.deepEqual((await lastAudit('mailbox.key-exported')).detail, { fingerprints: exported.fingerprints });
    await rejects(exportMailboxKey(mailbox.id, 'short', ADMIN), 400, 'weak-passphrase');
    await rejects(exportMailboxKey(crypto.randomUUID(), passphrase, ADMIN), 404, 'unknown-mailbox');
  });

  await t.test('master key rotation re-wraps every key in one go; a restart with the new key reads them', async () => {
    const oldMk = masterKey();
    await rejects(rotateMasterKey(crypto.randomBytes(16), ADMIN), 400, 'invalid-master-key');
    await rejects(rotateMasterKey(oldMk.key, ADMIN), 409, 'same-master-key');
    const newKey = crypto.randomBytes(32);
    const newId = masterKeyFrom(newKey).id;
    const count = Number((await q.query<{ n: number }>('SELECT count(*)::int AS n FROM mailbox_keys')).rows[0].n);
    const r = await rotateMasterKey(newKey, ADMIN);
    assert.deepEqual(r, { from: [oldMk.id], to: newId, rewrapped: count, alreadyUnderNew: 0 });
    assert.deepEqual(
      (await q.query<{ master_key_id: string }>('SELECT DISTINCT master_key_id FROM mailbox_keys')).rows.map((x) => x.master_key_id),
      [newId],
    );
    assert.equal(masterKey().id, newId, 'this process goes on with the new key');
    assert.equal((await readPrivateKeys(await mailboxPrivateKeys(q, mailbox.id))).length, 2);

    // A process still on the old key cannot read them; one started with the new key can.
    await useFreshProcessState({ INKAST_DATA_DIR: dataDir });
    await assert.rejects(mailboxPrivateKeys(await db(), mailbox.id), UnknownMasterKeyError);
    await useFreshProcessState({ INKAST_DATA_DIR: dataDir, INKAST_MASTER_KEY: newKey.toString('base64') });
    const keys = await readPrivateKeys(await mailboxPrivateKeys(await db(), mailbox.id));
    assert.deepEqual(await openWith(oldObject, keys), { name: 'before.txt', data: Buffer.from(before) });
    assert.deepEqual(await openWith(newObject, keys), { name: 'after.txt', data: Buffer.from(after) });
    assert.equal((await lastAudit('master-key.rotated')).detail.to, newId);
  });

  await t.test('rolling master key rotation: both keys read while the rows move, then the new one alone', async () => {
    const oldKey = masterKey().key;
    const newKey = crypto.randomBytes(32);
    const newId = masterKeyFrom(newKey).id;
    await rejects(rotateMasterKey(undefined, ADMIN), 400, 'no-previous-master-key');
    // Step 1: processes restart with the new key and the old one as previous.
    await useFreshProcessState({ INKAST_DATA_DIR: dataDir, INKAST_MASTER_KEY: newKey.toString('base64'), INKAST_MASTER_KEY_PREVIOUS: oldKey.toString('base64') });
    const q2 = await db();
    assert.equal((await readPrivateKeys(await mailboxPrivateKeys(q2, mailbox.id))).length, 2, 'rows under the previous key still read');
    const created = await createSharedMailbox({ name: 'Mottagning' });
    const ids = async () =>
      (await q2.query<{ master_key_id: string }>('SELECT master_key_id FROM mailbox_keys ORDER BY created_at')).rows.map((x) => x.master_key_id);
    assert.equal((await ids()).at(-1), newId, 'a new mailbox key is wrapped under the new master key');
    // Step 2: the rows move.
    const count = (await ids()).length;
    const r = await rotateMasterKey(undefined, ADMIN);
    assert.deepEqual(r, { from: [masterKeyFrom(oldKey).id], to: newId, rewrapped: count - 1, alreadyUnderNew: 1 });
    assert.deepEqual([...new Set(await ids())], [newId]);
    assert.deepEqual(await rotateMasterKey(undefined, ADMIN), { from: [], to: newId, rewrapped: 0, alreadyUnderNew: count }, 'repeating changes nothing');
    // Step 3: the previous key goes; everything reads with the new one alone.
    await useFreshProcessState({ INKAST_DATA_DIR: dataDir, INKAST_MASTER_KEY: newKey.toString('base64') });
    const keys = await readPrivateKeys(await mailboxPrivateKeys(await db(), mailbox.id));
    assert.deepEqual(await openWith(oldObject, keys), { name: 'before.txt', data: Buffer.from(before) });
    assert.deepEqual(await openWith(newObject, keys), { name: 'after.txt', data: Buffer.from(after) });
    assert.equal((await mailboxPrivateKeys(await db(), created.id)).length, 1);
  });

  await t.test('the audit chain holds after all of it', async () => {
    const v = await verifyAuditLog(await db());
    assert.equal(v.ok, true, JSON.stringify(v));
  });
});
