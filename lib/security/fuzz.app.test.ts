/**
 * Fuzzing the built app (`next build` first), reproducibly (seeded): malformed tus headers
 * (Upload-Length, Upload-Offset, Upload-Metadata, Tus-Resumable, Content-Type, the token, the
 * method, the upload id) and malformed JSON and form bodies, wrong types, bad ids and junk
 * headers at every route handler found under app/ (so new endpoints are fuzzed without editing
 * this file). Then, behind the app's back:
 *  - no answer was a 5xx;
 *  - no half-written row or object: every delivery and upload row is one the app accepted
 *    (201), every stored object belongs to such a row, and the one upload in progress holds
 *    exactly the bytes of the PATCHes the app acknowledged (204), none of the refused ones.
 */
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { appDatabase, appObjectStore } from '@/lib/testing/inspect';
import { startApp, type RunningApp } from '@/lib/testing/app';
import { openDelivery } from '@/lib/uploads/client';
import { prng } from './prng';
import { validateTusRequest } from './tus';

const root = path.resolve(import.meta.dirname, '..', '..');
const SEED = Number(process.env.INKAST_FUZZ_SEED ?? 0x1c5a);
const ROUNDS = Number(process.env.INKAST_FUZZ_ROUNDS ?? 700);
const NO_RATE_LIMITS = Object.fromEntries(
  ['DELIVERIES_PER_IP', 'UPLOAD_BYTES_PER_IP', 'CODES_PER_ADDRESS', 'CODES_PER_IP', 'CODE_CHECKS_PER_IP', 'SIGN_IN_PER_ADDRESS', 'SIGN_IN_PER_IP'].map(
    (n) => [`INKAST_RATE_${n}`, 'off'],
  ),
);

interface Endpoint {
  template: string;
  methods: string[];
}

/** Every route handler under app/ and the methods it exports. */
function routeHandlers(): Endpoint[] {
  const out: Endpoint[] = [];
  const walk = (dir: string) => {
    for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
      const p = path.join(dir, e.name);
      if (e.isDirectory()) walk(p);
      else if (e.name === 'route.ts') {
        const src = fs.readFileSync(p, 'utf8');
        const methods = new Set<string>();
        for (const m of src.matchAll(/export\s+(?:const|async function|function)\s+(GET|HEAD|POST|PUT|PATCH|DELETE|OPTIONS)\b/g)) methods.add(m[1]);
        for (const m of src.matchAll(/\bas\s+(GET|HEAD|POST|PUT|PATCH|DELETE|OPTIONS)\b/g)) methods.add(m[1]);
        const template = '/' + path.relative(path.join(root, 'app'), path.dirname(p)).split(path.sep).filter((s) => !/^\(.*\)$/.test(s)).join('/');
        out.push({ template, methods: [...methods] });
      }
    }
  };
  walk(path.join(root, 'app'));
  return out;
}

const JUNK_IDS = [
  '00000000-0000-4000-8000-000000000000',
  'x',
  '..%2F..%2Fetc%2Fpasswd',
  '%00',
  "1'%20OR%20'1'%3D'1",
  'a'.repeat(300),
  '%E2%82%AC%F0%9F%92%A5',
  '%C0%AF',
  '-1',
  '1e999',
];

/** Bodies no endpoint should accept, and none should choke on. */
function malformedBodies(rnd: ReturnType<typeof prng>): BodyInit[] {
  const deep = (n: number) => '['.repeat(n) + ']'.repeat(n);
  return [
    '',
    '{',
    '{"a":',
    '}',
    'null',
    'true',
    '0',
    '-0',
    '1e309',
    '"just a string"',
    '[]',
    deep(5000),
    '{"a":' + deep(3000) + '}',
    '{"__proto__":{"polluted":true},"constructor":{"prototype":{"polluted":true}}}',
    '{"slug":123,"senderEmail":[],"locale":{}}',
    '{"slug":null,"senderEmail":null}',
    '{"email":{"$ne":null},"next":["/inbox"]}',
    '{"email":"a@b.c","next":"https://evil.example/"}',
    '{"email":"a@b.c","next":"//evil.example"}',
    '{"manifest":"!!!!"}',
    '{"manifest":"AAAA"}',
    '{"manifest":' + '"' + 'A'.repeat(64) + '"}',
    '{"manifest":12}',
    '{"code":"000000","slug":"x","email":"a@b.c"}',
    '{"code":{"length":6},"slug":[],"email":1}',
    '{"a":1,"a":2}',
    '{"x":"' + 'y'.repeat(20_000) + '"}',
    '\uFEFF{"slug":"x"}',
    '{"slug":"\u0000\u0001","senderEmail":"a\u0000@b.c"}',
    '{"senderEmail":"' + 'a'.repeat(300) + '@example.org","slug":"x"}',
    '{"n":123456789012345678901234567890}',
    new Uint8Array([0xff, 0xfe, 0x7b, 0x22, 0xc3, 0x28, 0x22, 0x7d]),
    new Uint8Array(Array.from(crypto.randomBytes(200 + rnd.int(3000)))),
    'email=%ZZ&next=%',
    'email=' + 'a'.repeat(5000),
    '--x\r\nContent-Disposition: form-data; name="email"\r\n\r\na@b.c\r\n--x--',
  ];
}

const CONTENT_TYPES = [
  undefined,
  'application/json',
  'application/json; charset=utf-8',
  'application/json; charset=utf-16',
  'APPLICATION/JSON',
  'application/jsonx',
  'text/plain',
  'application/x-www-form-urlencoded',
  'multipart/form-data; boundary=x',
  'application/offset+octet-stream',
  '*/*',
  ';;;',
];

describe('fuzzing every endpoint of the built app', () => {
  let app: RunningApp;
  const statuses = new Map<string, number>();
  const fiveHundreds: string[] = [];
  /** Deliveries the app said it created (201). */
  let deliveriesCreated = 0;
  let submitted = 0;
  /** Uploads the app said it created (201), with their declared length. */
  const uploads = new Map<string, number>();
  let delivery: Awaited<ReturnType<typeof openDelivery>>;
  /** The JSON fuzzing's own delivery: it may cancel it, the tus fuzzing's stays as it is. */
  let other: Awaited<ReturnType<typeof openDelivery>>;
  let uploadId: string;
  let uploadLength: number;
  let offset = 0;
  let uploadGone = false;
  /** The sender cancelled the delivery (a DELETE with its token): every upload of it is gone. */
  let cancelled = false;

  async function send(what: string, url: string, init: RequestInit): Promise<Response | undefined> {
    let res: Response;
    try {
      res = await fetch(url, { ...init, redirect: 'manual', signal: AbortSignal.timeout(30_000) });
    } catch (err) {
      // fetch itself refused the request (a header value it will not send): nothing reached the app.
      if (err instanceof TypeError && !/fetch failed|terminated|socket/i.test(`${err.message} ${String(err.cause)}`)) return undefined;
      throw new Error(`${what}: the connection failed: ${(err as Error).message} ${String((err as Error).cause)}`);
    }
    await res.arrayBuffer().catch(() => undefined);
    const key = `${init.method ?? 'GET'} ${new URL(url).pathname.replace(/[0-9a-f-]{32,36}/g, ':id').slice(0, 40)} → ${res.status}`;
    statuses.set(key, (statuses.get(key) ?? 0) + 1);
    if (res.status >= 500) {
      let note = '';
      if (new URL(url).pathname.startsWith('/api/tus')) {
        const v = validateTusRequest({ method: init.method ?? 'GET', url, headers: new Headers(init.headers) });
        note = v.ok ? ' (validateTusRequest lets it through)' : ` (validateTusRequest, once lib/uploads calls it, answers ${v.status})`;
      }
      fiveHundreds.push(`${what}: ${res.status} ${init.method} ${url} ${JSON.stringify(init.headers)}${note}`);
    }
    return res;
  }

  before(async () => {
    app = await startApp({ env: { INKAST_LOG_LEVEL: 'warn', ...NO_RATE_LIMITS } });
    delivery = await openDelivery(app.url, { slug: app.slug, senderEmail: 'fuzz@example.org' });
    other = await openDelivery(app.url, { slug: app.slug, senderEmail: 'fuzz2@example.org' });
    deliveriesCreated = 2;
    // One upload, partly written, that the PATCH fuzzing aims at.
    uploadLength = 64 * 1024;
    const created = await fetch(`${app.url}/api/tus`, {
      method: 'POST',
      headers: {
        'Tus-Resumable': '1.0.0',
        'Upload-Length': String(uploadLength),
        'Upload-Metadata': `deliveryId ${Buffer.from(delivery.deliveryId).toString('base64')}`,
        'Inkast-Sender-Token': delivery.senderToken,
      },
    });
    assert.equal(created.status, 201);
    uploadId = created.headers.get('location')!.split('/').pop()!;
    uploads.set(uploadId, uploadLength);
    const first = await fetch(`${app.url}/api/tus/${uploadId}`, {
      method: 'PATCH',
      headers: { 'Tus-Resumable': '1.0.0', 'Upload-Offset': '0', 'Content-Type': 'application/offset+octet-stream', 'Inkast-Sender-Token': delivery.senderToken },
      body: crypto.randomBytes(1000),
    });
    assert.equal(first.status, 204);
    offset = 1000;
  });

  after(async () => {
    await app?.kill();
    if (app) fs.rmSync(app.dataDir, { recursive: true, force: true });
  });

  test('malformed tus headers: never a 5xx, refused PATCHes write nothing', { timeout: 600_000 }, async () => {
    fiveHundreds.length = 0;
    const rnd = prng(SEED);
    const token = () => delivery.senderToken;
    const meta = () => `deliveryId ${Buffer.from(delivery.deliveryId).toString('base64')}`;
    const junk: Record<string, (() => string | undefined)[]> = {
      'tus-resumable': [() => undefined, () => '1.0.0', () => '', () => '1.0', () => '0.2.2', () => '1.0.0, 1.0.0', () => 'x'.repeat(3000)],
      'upload-length': [
        () => undefined,
        () => '',
        () => '-1',
        () => '0',
        () => '1.5',
        () => '1e3',
        () => '0x10',
        () => 'NaN',
        () => '9'.repeat(30),
        () => '5100000001',
        () => '٣٣',
        () => '10, 10',
        () => String(1 + rnd.int(5000)),
      ],
      'upload-offset': [
        () => undefined,
        () => '',
        () => '-1',
        () => '1.0',
        () => '+5',
        () => '0x0',
        () => '9'.repeat(30),
        () => String(offset),
        () => String(offset + 1),
        () => String(Math.max(0, offset - 1)),
        () => String(uploadLength),
        () => '00',
      ],
      'upload-metadata': [
        () => undefined,
        () => '',
        meta,
        () => 'deliveryId',
        () => 'deliveryId !!!',
        () => `deliveryId ${Buffer.from('not-a-uuid').toString('base64')}`,
        () => `${meta()},filename ${Buffer.from('secret.pdf').toString('base64')}`,
        () => `deliveryId ${Buffer.from(crypto.randomUUID()).toString('base64')}`,
        () => `deliveryId ${'A'.repeat(6000)}`,
        () => ',,,',
        () => 'deliveryId  a b c',
      ],
      'content-type': [() => undefined, () => 'application/offset+octet-stream', () => 'application/json', () => 'text/plain', () => '', () => 'application/offset+octet-stream; charset=x'],
      'inkast-sender-token': [token, token, () => undefined, () => '', () => 'x', () => token().slice(1), () => crypto.randomBytes(32).toString('base64url'), () => `${token()}, ${token()}`],
      'upload-defer-length': [() => undefined, () => undefined, () => '1', () => '0'],
      'upload-concat': [() => undefined, () => undefined, () => 'partial', () => `final;/api/tus/${uploadId}`],
      'x-http-method-override': [() => undefined, () => undefined, () => 'DELETE', () => 'PATCH', () => 'GET'],
    };
    const validCreate = () => ({ 'tus-resumable': '1.0.0', 'upload-length': String(100 + rnd.int(1000)), 'upload-metadata': meta(), 'inkast-sender-token': token() });
    const validPatch = () => ({ 'tus-resumable': '1.0.0', 'upload-offset': String(offset), 'content-type': 'application/offset+octet-stream', 'inkast-sender-token': token() });

    for (let round = 0; round < ROUNDS; round++) {
      const kind = rnd.pick(['create', 'create', 'patch', 'patch', 'patch', 'head', 'delete', 'options', 'other'] as const);
      const method = kind === 'other' ? rnd.pick(['GET', 'PUT', 'TRACE_', 'PROPFIND', 'patch']) : kind === 'create' ? 'POST' : kind.toUpperCase();
      if (method === 'TRACE_') continue;
      const headers: Record<string, string | undefined> = kind === 'create' ? validCreate() : kind === 'patch' ? validPatch() : { 'tus-resumable': '1.0.0', 'inkast-sender-token': token() };
      // Mutate one to four headers; every 7th round stays valid (so valid requests interleave).
      if (round % 7 !== 0) {
        for (let k = rnd.int(4); k >= 0; k--) {
          const name = rnd.pick(Object.keys(junk));
          headers[name] = rnd.pick(junk[name])();
        }
      }
      const target =
        kind === 'create' ? '' : rnd.next() < 0.8 ? `/${uploadId}` : `/${rnd.pick([crypto.randomBytes(16).toString('hex'), ...JUNK_IDS])}`;
      // The sender may delete their own upload: a DELETE of it goes with someone else's token.
      if (kind === 'delete' && target === `/${uploadId}`) headers['inkast-sender-token'] = rnd.pick([crypto.randomBytes(32).toString('base64url'), 'x', undefined]);
      const body = kind === 'patch' || (kind === 'create' && rnd.next() < 0.2) ? crypto.randomBytes(rnd.int(3000)) : undefined;
      const clean = Object.fromEntries(Object.entries(headers).filter(([, v]) => v !== undefined)) as Record<string, string>;
      const res = await send(`tus ${kind} #${round}`, `${app.url}/api/tus${target}`, { method, headers: clean, body });
      if (!res) continue;
      if (method === 'POST' && res.status === 201) {
        const id = res.headers.get('location')!.split('/').pop()!;
        uploads.set(id, Number(clean['upload-length']));
        // Creation-with-upload may have written its body: that upload's size is checked below.
      }
      if (target === `/${uploadId}` && method === 'PATCH' && res.status === 204) {
        offset = Number(res.headers.get('upload-offset'));
        assert.equal(offset, Number(clean['upload-offset']) + (body?.length ?? 0), 'an acknowledged PATCH wrote exactly its body');
      }
      if (target === `/${uploadId}` && method === 'DELETE' && res.status === 204) {
        uploadGone = true;
        uploads.delete(uploadId);
        break;
      }
      // Every few rounds, the server's offset is exactly what it acknowledged.
      if (round % 25 === 0 && !uploadGone) {
        const head = await fetch(`${app.url}/api/tus/${uploadId}`, { method: 'HEAD', headers: { 'Tus-Resumable': '1.0.0', 'Inkast-Sender-Token': token() } });
        if (head.status === 200) assert.equal(Number(head.headers.get('upload-offset')), offset, `offset after round ${round}`);
        else assert.equal(head.status, 423, `HEAD after round ${round}: ${head.status}`);
      }
    }
    assert.deepEqual(fiveHundreds, []);
  });

  test('malformed JSON, forms, ids and headers at every route handler: never a 5xx', { timeout: 600_000 }, async () => {
    fiveHundreds.length = 0;
    const rnd = prng(SEED + 1);
    const endpoints = routeHandlers().filter((e) => !e.template.startsWith('/api/tus'));
    assert.ok(endpoints.length >= 10, `found only ${endpoints.length} route handlers`);
    const bodies = malformedBodies(rnd);
    const ids = () => rnd.pick([other.deliveryId, uploadId, crypto.randomUUID(), ...JUNK_IDS]);
    let requests = 0;
    for (const { template, methods } of endpoints) {
      for (const method of [...methods, 'PUT', 'PATCH']) {
        for (let i = 0; i < Math.ceil(ROUNDS / 20); i++) {
          const p = template.replace(/\[\[?\.{0,3}[^\]]+\]\]?/g, () => ids());
          const query = rnd.pick(['', '?token=x', `?token=${'A'.repeat(43)}`, '?next=//evil.example', '?checks=database,bogus', '?lang=xx', '?state=1&code=2&iss=x', '?%ZZ']);
          const headers: Record<string, string> = {};
          const type = rnd.pick(CONTENT_TYPES);
          if (type) headers['content-type'] = type;
          if (rnd.next() < 0.5) headers['inkast-sender-token'] = rnd.pick([other.senderToken, delivery.senderToken.slice(1), 'x', '']);
          if (rnd.next() < 0.3) headers.cookie = rnd.pick(['inkast_session=garbage', 'inkast_session=Fe26.2**x*y', 'lang=xx', 'inkast_sender=%%%']);
          if (rnd.next() < 0.2) headers.range = rnd.pick(['bytes=0-', 'bytes=-1', 'bytes=5-1', 'bytes=0-1,2-3', 'bytes=x', 'items=0-1']);
          if (rnd.next() < 0.2) headers.origin = app.url;
          const hasBody = !['GET', 'HEAD'].includes(method);
          const body = hasBody ? rnd.pick(bodies) : undefined;
          const res = await send(`${method} ${template}`, `${app.url}${p}${query}`, { method, headers, body });
          if (method === 'DELETE' && p.includes(delivery.deliveryId) && res?.status === 204) cancelled = true;
          requests++;
        }
      }
      // Valid-looking bodies with one field broken, for the JSON endpoints that take one.
      if (methods.includes('POST')) {
        const valid: Record<string, unknown> = { slug: app.slug, senderEmail: 'f@example.org', email: 'f@example.org', locale: 'sv', manifest: 'AAAA', code: '123456' };
        for (let i = 0; i < Math.ceil(ROUNDS / 20); i++) {
          const copy: Record<string, unknown> = { ...valid };
          const field = rnd.pick(Object.keys(copy));
          copy[field] = rnd.pick([null, 0, -1, 1e308, true, [], {}, '', ' ', 'x'.repeat(1000), '<script>', '\u0000', { $gt: '' }, ['a@b.c']]);
          const p = template.replace(/\[\[?\.{0,3}[^\]]+\]\]?/g, () => (rnd.next() < 0.5 ? other.deliveryId : ids()));
          const res = await send(`POST ${template} (mutated)`, `${app.url}${p}`, {
            method: 'POST',
            headers: { 'content-type': 'application/json', 'inkast-sender-token': other.senderToken },
            body: JSON.stringify(copy),
          });
          if (res?.status === 201 && template === '/api/deliveries') deliveriesCreated++;
          if (res?.status === 202 && template.endsWith('/submit')) submitted++;
          requests++;
        }
      }
    }
    // Pages: a form post and a Server Action call with a made-up id.
    for (const p of ['/', `/d/${app.slug}`, '/signin']) {
      for (const headers of [{ 'next-action': 'deadbeef' }, { 'next-action': '' }, { 'content-type': 'multipart/form-data; boundary=x' }, {}] as Record<string, string>[]) {
        await send(`POST page ${p}`, `${app.url}${p}`, { method: 'POST', headers, body: rnd.pick(bodies) });
        requests++;
      }
    }
    assert.ok(requests > 200, `${requests} requests`);
    assert.deepEqual(fiveHundreds, []);
  });

  test('nothing half-written: rows and objects are exactly what the app acknowledged', async (t) => {
    t.diagnostic(`answers: ${JSON.stringify(Object.fromEntries([...statuses].sort()))}`);
    await app.stop();
    const q = await appDatabase(app);
    try {
      const deliveries = (await q.query<{ id: string; state: string }>(`SELECT id, state FROM deliveries`)).rows;
      assert.equal(deliveries.length, deliveriesCreated, 'a delivery row for each 201 and no other');
      assert.equal(deliveries.filter((d) => d.state === 'submitted').length, submitted);
      t.diagnostic(`${uploads.size} uploads acknowledged; the delivery was ${cancelled ? 'cancelled by its sender' : 'left open'}`);
      if (cancelled) {
        assert.equal(deliveries.find((d) => d.id === delivery.deliveryId)?.state, 'abandoned');
        uploads.clear();
        uploadGone = true;
      }
      const files = (await q.query<{ upload_id: string; ciphertext_size: string; state: string }>(`SELECT upload_id, ciphertext_size::text, state FROM delivery_files`)).rows;
      assert.deepEqual(new Set(files.map((f) => f.upload_id)), new Set(uploads.keys()), 'an upload row for each 201 and no other');
      for (const f of files) assert.equal(Number(f.ciphertext_size), uploads.get(f.upload_id), `declared length of ${f.upload_id}`);

      const store = appObjectStore(app);
      const keys = new Set<string>();
      for await (const key of store.listKeys()) keys.add(key.replace(/\.(json|info|part)$/, ''));
      for (const key of keys) assert.ok(uploads.has(key), `object ${key} belongs to no acknowledged upload`);
      if (!uploadGone) {
        assert.equal(await store.size(uploadId), offset, 'the upload holds exactly the acknowledged bytes');
      }
      for (const [id, length] of uploads) {
        const size = await store.size(id);
        assert.ok(size === undefined || size <= length, `${id}: ${size} bytes of ${length}`);
      }
    } finally {
      await q.close();
    }
  });
});
