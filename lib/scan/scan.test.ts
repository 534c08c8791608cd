/**
 * The clamd client against a real clamd (scripts/clamd-start.sh; CI starts it): INSTREAM over TCP
 * and a unix socket, EICAR found, clean bytes pass, clamd gone is an error (never "clean"), and
 * verifyAndScan on real stored objects: one decrypting pass that hashes and scans.
 */
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import net from 'node:net';
import { before, describe, test } from 'node:test';
import { ObjectAuthError, verifyStoredObject } from '@/lib/crypto/decoder';
import { encode, memorySource, testKey, type TestKey } from '@/lib/crypto/testing';
import { renderMail } from '@/lib/mail';
import { ClamdError, clamdPing, clamdScanBytes, openClamdStream, verifyAndScan, type ScanSettings } from './index';
import { clamdTestTarget, eicar } from './testing';

const clamd = await clamdTestTarget();
const skip = clamd ? false : 'no clamd answers (run scripts/clamd-start.sh)';

async function closedPort(): Promise<number> {
  const srv = net.createServer();
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  const port = (srv.address() as net.AddressInfo).port;
  await new Promise<void>((r) => srv.close(() => r()));
  return port;
}

describe('the mails of a quarantine', () => {
  const ctx = { publicUrl: 'https://inkast.example.se' };
  const base = { reference: 'IK-7KQ2-M9XD', sentAt: new Date('2025-03-04T13:05:00Z'), reason: 'infected' as const };
  test('the sender learns why, in both languages', () => {
    assert.match(renderMail('delivery-rejected', 'sv', base, ctx).text, /Virusskanningen hittade skadlig kod/);
    const en = renderMail('delivery-rejected', 'en', base, ctx);
    assert.match(en.text, /malware scan found malicious code/);
    assert.match(en.text, /antivirus/);
  });
  test('the administrator gets the reference, mailbox, sender and finding, escaped, and no content', () => {
    const quarantine = { deliveryId: crypto.randomUUID(), mailboxName: 'Vårdcentralen <Norra>', senderEmail: 'a@example.org', signature: 'Eicar-Test-Signature' };
    for (const locale of ['sv', 'en'] as const) {
      const mail = renderMail('delivery-rejected', locale, { ...base, quarantine }, ctx);
      assert.match(mail.subject, /IK-7KQ2-M9XD/);
      for (const v of [quarantine.deliveryId, quarantine.senderEmail, quarantine.signature, 'Vårdcentralen <Norra>']) assert.ok(mail.text.includes(v), v);
      assert.ok(mail.html.includes('Vårdcentralen &lt;Norra&gt;') && !mail.html.includes('<Norra>'));
    }
  });
});

describe('verifyAndScan without a scanner', () => {
  test('reports that nothing was scanned, and verifies as verifyStoredObject does', async () => {
    const key = await testKey();
    const data = crypto.randomBytes(300_000);
    const { object } = await encode([key], data, { name: 'x.bin' });
    const got = await verifyAndScan(memorySource(object), [key.privateKey], undefined);
    const want = await verifyStoredObject(memorySource(object), [key.privateKey]);
    assert.deepEqual(got.scan, { scanned: false });
    assert.equal(got.sha256.toString('hex'), want.sha256.toString('hex'));
    assert.equal(got.fileSize, data.length);
    assert.equal(got.name, 'x.bin');
  });
});

describe('clamd (real daemon)', { skip }, () => {
  const target = () => ({ host: clamd!.host, port: clamd!.port });
  let key: TestKey;
  const settings = (over: Partial<ScanSettings> = {}): ScanSettings => ({ target: target(), maxBytes: 100 * 1024 * 1024, timeoutMs: 30_000, ...over });

  before(async () => {
    key = await testKey();
  });

  test('answers PING over TCP and over its unix socket', async () => {
    await clamdPing(target());
    if (clamd!.socket) await clamdPing({ socket: clamd!.socket });
  });

  test('finds EICAR, alone and inside a larger file sent in small pieces', async () => {
    const alone = await clamdScanBytes(target(), eicar());
    // clamd appends .UNOFFICIAL to signatures outside its official database.
    assert.ok(alone.infected && /^Eicar-Test-Signature/.test(alone.signature), JSON.stringify(alone));
    const big = crypto.randomBytes(3 * 1024 * 1024);
    eicar().copy(big, 2 * 1024 * 1024 + 17);
    const stream = await openClamdStream(target());
    for (let at = 0; at < big.length; at += 1000) await stream.write(big.subarray(at, at + 1000));
    const verdict = await stream.finish();
    assert.equal(verdict.infected, true);
  });

  test('passes clean bytes, over TCP and the unix socket', async () => {
    assert.deepEqual(await clamdScanBytes(target(), crypto.randomBytes(1024 * 1024)), { infected: false });
    assert.deepEqual(await clamdScanBytes(target(), Buffer.alloc(0)), { infected: false });
    if (clamd!.socket) assert.deepEqual(await clamdScanBytes({ socket: clamd!.socket }, Buffer.from('hello')), { infected: false });
  });

  test('clamd unreachable is a ClamdError, never a clean verdict', async () => {
    const port = await closedPort();
    await assert.rejects(clamdScanBytes({ host: '127.0.0.1', port }, Buffer.from('x')), ClamdError);
    await assert.rejects(clamdPing({ socket: '/nonexistent/clamd.sock' }), ClamdError);
    const key2 = key;
    const { object } = await encode([key2], Buffer.from('clean'), { name: 'a.txt' });
    await assert.rejects(verifyAndScan(memorySource(object), [key2.privateKey], settings({ target: { host: '127.0.0.1', port } })), ClamdError);
  });

  test('a server that speaks no clamd is a ClamdError', async () => {
    const srv = net.createServer((s) => s.end('HTTP/1.1 400 Bad Request\r\n\r\n'));
    await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
    try {
      const port = (srv.address() as net.AddressInfo).port;
      await assert.rejects(clamdScanBytes({ host: '127.0.0.1', port }, Buffer.from('x')), ClamdError);
    } finally {
      srv.close();
    }
  });

  test('verifyAndScan: an encrypted EICAR is found in the decrypted stream; a clean file passes', async () => {
    const infected = await encode([key], eicar(), { name: 'invoice.pdf' });
    const r1 = await verifyAndScan(memorySource(infected.object), [key.privateKey], settings());
    assert.ok(r1.scan.scanned && r1.scan.infected && /^Eicar-Test-Signature/.test(r1.scan.signature), JSON.stringify(r1.scan));
    assert.equal(r1.fileSize, 68);

    const data = crypto.randomBytes(9 * 1024 * 1024 + 5);
    const clean = await encode([key], data, { name: 'scan.bin' });
    const r2 = await verifyAndScan(memorySource(clean.object, 256 * 1024), [key.privateKey], settings());
    assert.deepEqual(r2.scan, { scanned: true, infected: false, scannedBytes: data.length, partial: false });
    assert.equal(r2.sha256.toString('hex'), crypto.createHash('sha256').update(data).digest('hex'));
  });

  test('verifyAndScan sends at most maxBytes and says the scan was partial', async () => {
    const data = crypto.randomBytes(2 * 1024 * 1024);
    eicar().copy(data, 1024 * 1024 + 100); // past the limit: this scan cannot see it, and says so
    const { object } = await encode([key], data);
    const r = await verifyAndScan(memorySource(object), [key.privateKey], settings({ maxBytes: 1024 * 1024 }));
    assert.deepEqual(r.scan, { scanned: true, infected: false, scannedBytes: 1024 * 1024, partial: true });
    // Within the limit it is found.
    const r2 = await verifyAndScan(memorySource(object), [key.privateKey], settings({ maxBytes: 1024 * 1024 + 200 }));
    assert.equal(r2.scan.scanned && r2.scan.infected, true);
  });

  test('a tampered object fails as before (ObjectAuthError) and the scan is abandoned', async () => {
    const { object } = await encode([key], crypto.randomBytes(5 * 1024 * 1024));
    const bad = new Uint8Array(object);
    bad[bad.length - 5_000_000] ^= 1;
    await assert.rejects(verifyAndScan(memorySource(bad), [key.privateKey], settings()), ObjectAuthError);
    // clamd is still fine afterwards.
    await clamdPing(target());
  });
});
