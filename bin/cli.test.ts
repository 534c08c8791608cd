/**
 * The `inkast` command end to end, as an operator runs it: real processes on a PGlite data
 * directory (no app running). User administration, link rotation, policy, key export, offline
 * decryption of a stored object, the audit check before and after a row is tampered with, and
 * the exit codes.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import * as openpgp from 'openpgp';
import { FileEncoder, newFileEncryption } from '@/lib/crypto/encoder';
import { openDb } from '@/lib/db';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const CONFIG_KEYS = /^(INKAST_|S3_|SMTP_URL$|DATABASE_URL$|MAIL_FROM$)/;

interface Run {
  code: number;
  stdout: string;
  stderr: string;
  json: Record<string, unknown>;
}

function inkast(args: string[], env: Record<string, string>): Promise<Run> {
  const clean: NodeJS.ProcessEnv = { ...process.env, INKAST_LOG_LEVEL: 'silent', ...env };
  for (const k of Object.keys(clean)) if (CONFIG_KEYS.test(k) && !(k in env) && k !== 'INKAST_LOG_LEVEL') delete clean[k];
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      [path.join(ROOT, 'bin/inkast.mjs'), ...args, '--json'],
      { cwd: os.tmpdir(), env: clean, timeout: 60_000 },
      (err, stdout, stderr) => {
        const code = err ? (typeof err.code === 'number' ? err.code : 1) : 0;
        const text = (stdout.trim() || stderr.trim()).split('\n').pop() ?? '';
        let json: Record<string, unknown> = {};
        try {
          json = JSON.parse(text);
        } catch {
          /* not JSON: left empty */
        }
        resolve({ code, stdout, stderr, json });
      },
    );
  });
}

test('inkast CLI: users, links, policy, key export, offline decrypt, audit verify', { timeout: 600_000 }, async (t) => {
  const work = fs.mkdtempSync(path.join(os.tmpdir(), 'inkast-cli-'));
  const dataDir = path.join(work, 'data');
  const env = { INKAST_DATA_DIR: dataDir };
  const cli = (...args: string[]) => inkast(args, env);
  const ok = async (...args: string[]) => {
    const r = await cli(...args);
    assert.equal(r.code, 0, `${args.join(' ')}: ${r.stderr}`);
    return r.json;
  };
  const passFile = path.join(work, 'passphrase');
  fs.writeFileSync(passFile, 'a long enough passphrase\n');

  const user = await ok('user', 'create', '--email', 'Handler@Example.org', '--name', 'Handler');
  const mailboxId = String(user.mailboxId);
  const firstUrl = String(user.filedropUrl);

  await t.test('link rotate gives a new link; disable and enable', async () => {
    const r = await ok('link', 'rotate', '--mailbox', mailboxId);
    assert.equal(r.mailboxId, mailboxId);
    assert.notEqual(r.filedropUrl, firstUrl);
    // The old slug no longer names the mailbox.
    const old = await cli('link', 'rotate', '--mailbox', firstUrl.split('/').pop()!);
    assert.equal(old.code, 1);
    assert.match(String(old.json.error), /No mailbox/);
    assert.equal((await ok('link', 'disable', '--mailbox', mailboxId)).enabled, false);
    assert.equal((await ok('link', 'enable', '--mailbox', String(r.filedropUrl).split('/').pop()!)).enabled, true);
  });

  await t.test('mailbox policy, with its refusals', async () => {
    const r = await ok('mailbox', 'policy', '--mailbox', mailboxId, '--verified-sender', 'true', '--max-files', '5', '--retention-days', '14');
    assert.deepEqual(r, { mailboxId, requireVerifiedSender: true, maxDeliveryBytes: 5_000_000_000, maxFilesPerDelivery: 5, retentionDays: 14 });
    assert.equal((await cli('mailbox', 'policy', '--mailbox', mailboxId)).code, 2, 'nothing to set');
    assert.equal((await cli('mailbox', 'policy', '--mailbox', mailboxId, '--max-files', 'lots')).code, 2);
    assert.equal((await cli('mailbox', 'policy', '--mailbox', mailboxId, '--verified-sender', 'maybe')).code, 2);
    assert.equal((await cli('mailbox', 'policy', '--mailbox', mailboxId, '--retention-days', '0')).code, 2);
    assert.equal((await cli('mailbox', 'policy', '--mailbox', crypto.randomUUID(), '--retention-days', '3')).code, 1);
    assert.equal((await cli('link', 'rotate')).code, 2, 'no --mailbox');
    assert.equal((await cli('frobnicate', 'now')).code, 2);
  });

  await t.test('user list, disable, enable and role, with their refusals', async () => {
    const listed = (await ok('user', 'list')).users as Record<string, unknown>[];
    assert.deepEqual(
      listed.map((u) => [u.email, u.role, u.disabled]),
      [
        ['admin@inkast.localhost', 'admin', false],
        ['handler@example.org', 'handler', false],
      ],
    );
    const handler = listed[1];
    const personal = ((await ok('mailbox', 'list')).mailboxes as Record<string, unknown>[]).find((m) => m.id === mailboxId);
    assert.equal(handler.filedropUrl, personal?.filedropUrl, 'the link of their personal mailbox');
    assert.equal(handler.sharedMailboxes, 0);

    assert.deepEqual(await ok('user', 'disable', 'Handler@Example.org'), { userId: handler.id, email: 'handler@example.org', disabled: true });
    assert.equal(((await ok('user', 'list')).users as Record<string, unknown>[]).find((u) => u.id === handler.id)?.disabled, true);
    assert.equal((await ok('user', 'enable', 'handler@example.org')).disabled, false);
    assert.equal((await ok('user', 'role', 'handler@example.org', 'admin')).role, 'admin');
    assert.equal((await ok('user', 'role', 'handler@example.org', 'handler')).role, 'handler');

    for (const args of [['user', 'disable', 'admin@inkast.localhost'], ['user', 'role', 'admin@inkast.localhost', 'handler']]) {
      const refused = await cli(...args);
      assert.equal(refused.code, 1, args.join(' '));
      assert.equal(refused.json.code, 'last-admin');
    }
    const unknown = await cli('user', 'disable', 'nobody@example.org');
    assert.equal(unknown.code, 1);
    assert.equal(unknown.json.code, 'unknown-user');
    assert.equal((await cli('user', 'role', 'handler@example.org', 'owner')).code, 2);
    assert.equal((await cli('user', 'enable')).code, 2, 'no address');
  });

  const keyFile = path.join(work, 'mailbox-key.asc');
  await t.test('key rotate and key export', async () => {
    const rotated = await ok('key', 'rotate', '--mailbox', mailboxId);
    assert.match(String(rotated.fingerprint), /^[0-9a-f]{64}$/);
    const weak = path.join(work, 'weak');
    fs.writeFileSync(weak, 'short\n');
    const refused = await cli('key', 'export', '--mailbox', mailboxId, '--passphrase-file', weak, '--out', path.join(work, 'weak.asc'));
    assert.equal(refused.code, 2);
    assert.equal(fs.existsSync(path.join(work, 'weak.asc')), false);
    const r = await ok('key', 'export', '--mailbox', mailboxId, '--passphrase-file', passFile, '--out', keyFile);
    assert.equal((r.fingerprints as string[])[0], rotated.fingerprint, 'the active key first');
    assert.equal((r.fingerprints as string[]).length, 2);
    assert.equal(fs.statSync(keyFile).mode & 0o777, 0o600);
    assert.match(fs.readFileSync(keyFile, 'utf8'), /BEGIN PGP PRIVATE KEY BLOCK/);
    assert.equal((await cli('key', 'export', '--mailbox', mailboxId, '--passphrase-file', passFile, '--out', keyFile)).code, 2, 'no overwrite');
  });

  await t.test('decrypt: a stored object back to its bytes and name, offline', async () => {
    // The mailbox's active public key, from the export (the active key comes first).
    const armoredKey = fs.readFileSync(keyFile, 'utf8').match(/-----BEGIN[\s\S]*?END PGP PRIVATE KEY BLOCK-----/)![0];
    const unlocked = await openpgp.decryptKey({ privateKey: await openpgp.readPrivateKey({ armoredKey }), passphrase: 'a long enough passphrase' });
    const original = crypto.randomBytes(300_000);
    const name = 'remiss 2026 – Åsa.pdf';
    const encryption = await newFileEncryption({ publicKeys: [unlocked.toPublic().armor()], name, fileSize: original.length });
    const encoder = new FileEncoder({ ...encryption, readPlain: async (s, e) => original.subarray(s, e) });
    const objectFile = path.join(work, 'object.bin');
    fs.writeFileSync(objectFile, await encoder.range(0, encoder.totalLength));

    // No database reachable and no data directory: decrypt must not need either.
    const offline = { INKAST_DATA_DIR: path.join(work, 'nowhere'), DATABASE_URL: 'postgres://127.0.0.1:9/none' };
    const outDir = path.join(work, 'out');
    const args = ['decrypt', '--key', keyFile, '--passphrase-file', passFile, '--object', objectFile, '--out', outDir];
    const r = await inkast(args, offline);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.json.name, name);
    assert.equal(r.json.size, original.length);
    assert.deepEqual(fs.readFileSync(path.join(outDir, name)), original);
    assert.equal(fs.existsSync(offline.INKAST_DATA_DIR), false, 'nothing was opened or created');

    assert.equal((await inkast(args, offline)).code, 1, 'refuses to overwrite');
    const wrong = path.join(work, 'wrong');
    fs.writeFileSync(wrong, 'not the passphrase at all\n');
    const bad = await inkast(['decrypt', '--key', keyFile, '--passphrase-file', wrong, '--object', objectFile, '--out', path.join(work, 'o2')], offline);
    assert.equal(bad.code, 1);
    assert.match(String(bad.json.error), /passphrase/);
    const tampered = fs.readFileSync(objectFile);
    tampered[tampered.length - 5] ^= 1;
    fs.writeFileSync(path.join(work, 'tampered.bin'), tampered);
    const t2 = await inkast(['decrypt', '--key', keyFile, '--passphrase-file', passFile, '--object', path.join(work, 'tampered.bin'), '--out', path.join(work, 'o3')], offline);
    assert.equal(t2.code, 1);
    assert.equal(fs.existsSync(path.join(work, 'o3', name)), false, 'nothing written from a tampered object');
    assert.equal((await inkast(['decrypt', '--key', keyFile], offline)).code, 2);
  });

  await t.test('master-key rotate, then only the new key reads the keys; retention and delivery delete', async () => {
    const newKeyFile = path.join(work, 'new-master.key');
    const newKey = crypto.randomBytes(32).toString('base64');
    fs.writeFileSync(newKeyFile, newKey + '\n', { mode: 0o600 });
    const r = await ok('master-key', 'rotate', '--new-key-file', newKeyFile);
    assert.ok(Number(r.rewrapped) >= 3, JSON.stringify(r)); // the first admin's key and both of the handler's
    assert.equal(r.alreadyUnderNew, 0);
    const out = (n: string) => path.join(work, n);
    const stale = await cli('key', 'export', '--mailbox', mailboxId, '--passphrase-file', passFile, '--out', out('stale.asc'));
    assert.equal(stale.code, 1, 'the old master key no longer unwraps them');
    const fresh = await inkast(['key', 'export', '--mailbox', mailboxId, '--passphrase-file', passFile, '--out', out('fresh.asc')], { ...env, INKAST_MASTER_KEY: newKey });
    assert.equal(fresh.code, 0, fresh.stderr);
    const again = await inkast(['master-key', 'rotate', '--new-key-file', newKeyFile], { ...env, INKAST_MASTER_KEY: newKey });
    assert.equal(again.code, 1, 'the key in use already');

    // The rolling way: processes run with a newer key and the current one as previous, then the rows move.
    const newer = crypto.randomBytes(32).toString('base64');
    const rolling = { ...env, INKAST_MASTER_KEY: newer, INKAST_MASTER_KEY_PREVIOUS: newKey };
    assert.equal((await inkast(['master-key', 'rotate'], { ...env, INKAST_MASTER_KEY: newKey })).code, 2, 'no previous key configured');
    const rolled = await inkast(['master-key', 'rotate'], rolling);
    assert.equal(rolled.code, 0, rolled.stderr);
    assert.equal(rolled.json.rewrapped, r.rewrapped);
    const alone = await inkast(['key', 'export', '--mailbox', mailboxId, '--passphrase-file', passFile, '--out', out('newer.asc')], { ...env, INKAST_MASTER_KEY: newer });
    assert.equal(alone.code, 0, `the newer key alone reads every key: ${alone.stderr}`);
    assert.deepEqual(await ok('retention', 'run'), { deleted: [] });
    assert.equal((await cli('delivery', 'delete', '--delivery', crypto.randomUUID())).code, 1);
  });

  await t.test('audit verify passes, then names the entry changed behind its back', async () => {
    const good = await ok('audit', 'verify');
    assert.equal(good.ok, true);
    assert.ok(Number(good.entries) >= 6, JSON.stringify(good));

    const database = await openDb({ pgliteDir: path.join(dataDir, 'pglite') });
    try {
      const target = (await database.query<{ id: number }>(`SELECT id FROM audit_log WHERE action = 'mailbox.policy-changed' ORDER BY id LIMIT 1`)).rows[0];
      await database.query(`UPDATE audit_log SET detail = '{"retentionDays": 3650}' WHERE id = $1`, [target.id]);
      await database.close(); // PGlite: one process at a time on a directory
      const r = await cli('audit', 'verify');
      assert.equal(r.code, 1, r.stderr);
      assert.equal(r.json.ok, false);
      assert.equal(r.json.entryId, Number(target.id));
      assert.match(String(r.json.reason), new RegExp(`entry ${target.id}`));
    } finally {
      await database.close().catch(() => {});
    }
  });

  fs.rmSync(work, { recursive: true, force: true });
});
