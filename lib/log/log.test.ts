/**
 * The logger's redaction, on the lines it actually writes: secrets and content passed in every
 * way a caller might (by name, nested, in a message string, in an error, as a request, as bytes)
 * never come out; what operators need (ids, states, counts, error types) does.
 */
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import { Writable } from 'node:stream';
import { test } from 'node:test';
import { createLogger, sanitize, scrubString } from './index';

function capture() {
  const lines: string[] = [];
  const destination = new Writable({
    write(chunk, _enc, cb) {
      lines.push(String(chunk));
      cb();
    },
  });
  return { log: createLogger({ level: 'trace', destination }), text: () => lines.join(''), lines };
}

const id = crypto.randomBytes(4).toString('hex');
const token = crypto.randomBytes(32).toString('base64url');
const m = {
  subject: `SUBJECT-MARKER-${id}`,
  message: `MESSAGE-MARKER-${id}`,
  fileName: `name-marker-${id}.pdf`,
  code: `4711${id.replace(/\D/g, '').slice(0, 2)}`,
  cookie: `inkast_session=Fe26.2**${crypto.randomBytes(40).toString('base64url')}*${crypto.randomBytes(8).toString('hex')}`,
  password: `PASSWORD-MARKER-${id}`,
  key: `-----BEGIN PGP PRIVATE KEY BLOCK-----\n\nKEY-MARKER-${id}\n-----END PGP PRIVATE KEY BLOCK-----`,
  slug: '7XkQ2bZr9PwLmN4cVt8Hs',
};

test('secrets and content never reach a line, however they are passed', async () => {
  const { log, text } = capture();
  const deliveryId = crypto.randomUUID();
  log.info({ deliveryId, subject: m.subject, message: m.message, fileName: m.fileName, state: 'delivered', count: 3 }, 'delivery');
  log.info({ nested: { deep: { senderToken: token, manifest: { files: [{ name: m.fileName }] }, code: m.code } } }, 'nested');
  log.info({ headers: { cookie: m.cookie, 'inkast-sender-token': token, 'user-agent': 'x' } }, 'headers');
  log.info({ req: new Request(`http://127.0.0.1/auth/verify?token=${token}&next=/inbox`, { headers: { cookie: m.cookie } }) }, 'request');
  log.info({ request: { method: 'GET', url: `/d/${m.slug}?lang=sv`, headers: { cookie: m.cookie } } }, 'node request');
  log.warn(`sign-in link https://inkast.example.se/auth/verify?token=${token} for someone`);
  log.warn('a token %s and an object %o', token, { password: m.password, privateKey: m.key });
  log.error({ err: new Error(`failed for ${token} with session ${m.cookie}`) });
  log.error(new Error(`bare error ${token}`));
  const withCause = new Error('outer', { cause: Object.assign(new Error(`inner ${token}`), { code: 'ECONNREFUSED' }) });
  log.error({ err: withCause }, 'with cause');
  log.info({ body: m.message, text: m.message, html: `<p>${m.message}</p>`, data: Buffer.from(m.subject), chunk: new Uint8Array(4) });
  log.info({ link: `https://inkast.example.se/auth/verify?token=${token}`, url: `https://x.example/d/${m.slug}` }, 'urls');
  log.info({ armored: m.key, authorization: `Bearer ${token}`, clientSecret: m.password, apiKey: m.password }, 'keys');
  log.info({ key: m.password, keys: [m.key], secret: m.password, otp: m.code }, 'more keys');
  log.info({ buffer: Buffer.from(m.subject), stream: new ReadableStream(), ab: new TextEncoder().encode(m.message).buffer }, 'bytes');
  log.info({ anything: `some text with ${m.key} inside` }, 'pgp in text');
  const circular: Record<string, unknown> = { deliveryId };
  circular.self = circular;
  log.info(circular, 'circular');
  await new Promise((r) => setImmediate(r));

  const out = text();
  for (const [name, marker] of Object.entries({ ...m, token, seal: m.cookie.split('=')[1] })) {
    assert.ok(!out.includes(marker), `${name} leaked: ${out.split('\n').find((l) => l.includes(marker))}`);
  }
  for (const marker of [`KEY-MARKER-${id}`, `PASSWORD-MARKER-${id}`]) assert.ok(!out.includes(marker), marker);
  // What operators need is still there.
  assert.ok(out.includes(deliveryId));
  assert.ok(out.includes('"state":"delivered"'));
  assert.ok(out.includes('"count":3'));
  assert.ok(out.includes('ECONNREFUSED'));
  assert.ok(out.includes('"method":"GET"'));
  assert.ok(out.includes('/d/[slug]'));
  for (const line of out.trim().split('\n')) JSON.parse(line);
});

test('scrubString keeps hex ids, digests, uuids and file paths readable', () => {
  const sha = crypto.createHash('sha256').update('x').digest('hex');
  const uuid = crypto.randomUUID();
  const hexId = crypto.randomBytes(16).toString('hex');
  const path = '/work/main/.next-sec/server/chunks/ssr/node_modules_next_dist_compiled_react-dom_server_edge_production.js:12:345';
  for (const s of [sha, uuid, hexId, path, 'IK-7KQ2-M9XD', 'delivery-notification:' + uuid]) assert.equal(scrubString(s), s);
  assert.equal(scrubString(token), '[redacted-token]');
  assert.match(scrubString(`x ${crypto.randomBytes(60).toString('base64')} y`), /^x \[redacted-base64\] y$/);
});

test('sanitize bounds depth, arrays and length', () => {
  let deep: Record<string, unknown> = { v: 1 };
  for (let i = 0; i < 20; i++) deep = { deep };
  assert.ok(JSON.stringify(sanitize(deep)).includes('[deep]'));
  const arr = sanitize(Array.from({ length: 500 }, (_, i) => i)) as unknown[];
  assert.equal(arr.length, 51);
  assert.ok((sanitize('x'.repeat(100_000)) as string).length <= 2001);
});
