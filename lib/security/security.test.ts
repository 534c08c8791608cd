/**
 * The security headers, the cross-site check and the tus request schema, without a server:
 * tables of the cases that matter and a seeded property test over malformed tus headers.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import {
  apiSecurityHeaders,
  commonSecurityHeaders,
  newNonce,
  pageContentSecurityPolicy,
  pageSecurityHeaders,
  staticHeaderRules,
} from './headers';
import { checkOrigin } from './origin';
import { prng } from './prng';
import { TUS_MAX_UPLOAD_LENGTH, validateTusRequest } from './tus';

const directives = (csp: string) => new Map(csp.split(/;\s*/).map((d) => [d.split(' ')[0], d.split(' ').slice(1)] as const));

describe('Content-Security-Policy', () => {
  test('pages: scripts only by this response’s nonce, nothing inline, no eval, no framing', () => {
    const nonce = newNonce();
    const d = directives(pageContentSecurityPolicy({ nonce, https: false }));
    assert.deepEqual(d.get('script-src'), [`'nonce-${nonce}'`, "'strict-dynamic'"]);
    assert.deepEqual(d.get('style-src'), ["'self'", `'nonce-${nonce}'`]);
    assert.deepEqual(d.get('frame-ancestors'), ["'none'"]);
    assert.deepEqual(d.get('object-src'), ["'none'"]);
    assert.deepEqual(d.get('base-uri'), ["'none'"]);
    assert.deepEqual(d.get('form-action'), ["'self'"]);
    assert.deepEqual(d.get('connect-src'), ["'self'"]);
    assert.deepEqual(d.get('img-src'), ["'self'", 'data:']);
    assert.deepEqual(d.get('worker-src'), ["'self'"]);
    assert.equal(d.has('upgrade-insecure-requests'), false);
    const all = [...d.values()].flat();
    for (const bad of ["'unsafe-inline'", "'unsafe-eval'", "'wasm-unsafe-eval'", "'unsafe-hashes'", '*', 'http:', 'https:', 'blob:']) {
      assert.ok(!all.includes(bad), bad);
    }
  });

  test('https adds upgrade-insecure-requests and HSTS; http sends neither', () => {
    const csp = pageContentSecurityPolicy({ nonce: 'n', https: true });
    assert.match(csp, /upgrade-insecure-requests/);
    assert.match(commonSecurityHeaders({ https: true })['Strict-Transport-Security'], /^max-age=\d{8,}; includeSubDomains$/);
    assert.equal(commonSecurityHeaders({ https: false })['Strict-Transport-Security'], undefined);
  });

  test('dev mode alone allows eval (for Next’s overlay)', () => {
    assert.match(pageContentSecurityPolicy({ nonce: 'n', https: false, dev: true }), /'unsafe-eval'/);
  });

  test('nonces are 128-bit, base64, fresh each time', () => {
    const seen = new Set(Array.from({ length: 1000 }, () => newNonce()));
    assert.equal(seen.size, 1000);
    for (const n of seen) assert.equal(Buffer.from(n, 'base64').length, 16);
  });

  test('every response: no-referrer, nosniff, DENY, Permissions-Policy; API answers allow nothing', () => {
    for (const h of [pageSecurityHeaders({ nonce: 'n', https: false }), apiSecurityHeaders({ https: false })]) {
      assert.equal(h['Referrer-Policy'], 'no-referrer');
      assert.equal(h['X-Content-Type-Options'], 'nosniff');
      assert.equal(h['X-Frame-Options'], 'DENY');
      assert.match(h['Permissions-Policy'], /camera=\(\), .*geolocation=\(\), .*microphone=\(\)/);
    }
    assert.match(apiSecurityHeaders({ https: false })['Content-Security-Policy'], /^default-src 'none'; frame-ancestors 'none'/);
    assert.equal(staticHeaderRules(false)[0].source, '/api/tus/:path*');
  });
});

describe('checkOrigin', () => {
  const site = 'https://inkast.example.se';
  const req = (method: string, headers: Record<string, string>) => ({ method, headers: new Headers(headers) });
  const cases: [string, string, Record<string, string>, boolean][] = [
    ['same-origin POST', 'POST', { origin: site, 'sec-fetch-site': 'same-origin' }, true],
    ['same-origin DELETE, Origin only', 'DELETE', { origin: site }, true],
    ['no browser at all (integration, curl)', 'POST', {}, true],
    ['safe method from anywhere', 'GET', { origin: 'https://evil.example' }, true],
    ['HEAD and OPTIONS are safe', 'OPTIONS', { origin: 'https://evil.example' }, true],
    ['foreign Origin', 'POST', { origin: 'https://evil.example' }, false],
    ['foreign Origin on PATCH', 'PATCH', { origin: 'https://evil.example' }, false],
    ['foreign Origin, lower-case method', 'put', { origin: 'https://evil.example' }, false],
    ['sibling subdomain (same-site)', 'POST', { origin: 'https://x.example.se', 'sec-fetch-site': 'same-site' }, false],
    ['same scheme and host, other port', 'POST', { origin: 'https://inkast.example.se:8443' }, false],
    ['http downgrade of our host', 'POST', { origin: 'http://inkast.example.se' }, false],
    ['Origin null (sandboxed frame, data: URL)', 'POST', { origin: 'null' }, false],
    ['Origin null from a cross-site page', 'POST', { origin: 'null', 'sec-fetch-site': 'cross-site' }, false],
    ['Origin null from a sibling site', 'POST', { origin: 'null', 'sec-fetch-site': 'same-site' }, false],
    ['our own form post under Referrer-Policy no-referrer', 'POST', { origin: 'null', 'sec-fetch-site': 'same-origin' }, true],
    ['no Origin, Sec-Fetch-Site cross-site', 'POST', { 'sec-fetch-site': 'cross-site' }, false],
    ['matching Origin but cross-site fetch metadata', 'POST', { origin: site, 'sec-fetch-site': 'cross-site' }, false],
    ['no Origin, foreign Referer', 'POST', { referer: 'https://evil.example/page' }, false],
    ['no Origin, garbage Referer', 'POST', { referer: 'not a url' }, false],
    ['no Origin, our Referer', 'POST', { referer: `${site}/d/abc` }, true],
    ['user-typed navigation (Sec-Fetch-Site none)', 'POST', { 'sec-fetch-site': 'none' }, true],
    ['origin with a trailing slash is not an origin', 'POST', { origin: `${site}/` }, false],
  ];
  for (const [name, method, headers, ok] of cases) {
    test(`${ok ? 'allows' : 'refuses'}: ${name}`, () => {
      assert.equal(checkOrigin(req(method, headers), site).ok, ok);
    });
  }
});

describe('validateTusRequest', () => {
  const token = 'A'.repeat(20) + 'b_-'.repeat(7) + '12';
  const deliveryId = '5b0c7f7e-2f1e-4a39-9a55-0f2b8f0e1c11';
  const metadata = `deliveryId ${Buffer.from(deliveryId).toString('base64')}`;
  const uploadId = '0123456789abcdef0123456789abcdef';
  const base = { 'tus-resumable': '1.0.0', 'inkast-sender-token': token };
  const create = { ...base, 'upload-length': '1000', 'upload-metadata': metadata };
  const patch = { ...base, 'upload-offset': '0', 'content-type': 'application/offset+octet-stream', 'content-length': '10' };
  const r = (method: string, path: string, headers: Record<string, string>) =>
    validateTusRequest({ method, url: `http://127.0.0.1:3000${path}`, headers: new Headers(headers) });

  test('accepts what the clients send', () => {
    assert.equal(token.length, 43);
    assert.deepEqual(r('POST', '/api/tus', create), { ok: true });
    assert.deepEqual(r('PATCH', `/api/tus/${uploadId}`, patch), { ok: true });
    assert.deepEqual(r('HEAD', `/api/tus/${uploadId}`, base), { ok: true });
    assert.deepEqual(r('DELETE', `/api/tus/${uploadId}`, base), { ok: true });
    assert.deepEqual(r('OPTIONS', '/api/tus', {}), { ok: true });
    assert.deepEqual(r('POST', '/api/tus', { ...create, 'upload-length': String(TUS_MAX_UPLOAD_LENGTH) }), { ok: true });
  });

  const refused: [string, string, string, Record<string, string>, number][] = [
    ['GET', 'GET', `/api/tus/${uploadId}`, base, 405],
    ['PUT', 'PUT', `/api/tus/${uploadId}`, base, 405],
    ['method override', 'POST', '/api/tus', { ...create, 'x-http-method-override': 'DELETE' }, 400],
    ['path traversal id', 'HEAD', '/api/tus/..%2F..%2Fetc', base, 404],
    ['id not ours', 'HEAD', '/api/tus/abc', base, 404],
    ['nested path', 'HEAD', `/api/tus/${uploadId}/x`, base, 404],
    ['POST to an upload', 'POST', `/api/tus/${uploadId}`, create, 405],
    ['PATCH without id', 'PATCH', '/api/tus', patch, 404],
    ['no Tus-Resumable', 'POST', '/api/tus', { ...create, 'tus-resumable': '' }, 412],
    ['old Tus-Resumable', 'POST', '/api/tus', { ...create, 'tus-resumable': '0.2.2' }, 412],
    ['no token', 'HEAD', `/api/tus/${uploadId}`, { 'tus-resumable': '1.0.0' }, 404],
    ['short token', 'HEAD', `/api/tus/${uploadId}`, { ...base, 'inkast-sender-token': 'abc' }, 404],
    ['token with a quote', 'HEAD', `/api/tus/${uploadId}`, { ...base, 'inkast-sender-token': `${token.slice(1)}'` }, 404],
    ['no Upload-Length', 'POST', '/api/tus', { ...base, 'upload-metadata': metadata }, 400],
    ['zero Upload-Length', 'POST', '/api/tus', { ...create, 'upload-length': '0' }, 400],
    ['negative Upload-Length', 'POST', '/api/tus', { ...create, 'upload-length': '-1' }, 400],
    ['hex Upload-Length', 'POST', '/api/tus', { ...create, 'upload-length': '0x10' }, 400],
    ['exponent Upload-Length', 'POST', '/api/tus', { ...create, 'upload-length': '1e9' }, 400],
    ['leading zero Upload-Length', 'POST', '/api/tus', { ...create, 'upload-length': '0100' }, 400],
    ['huge Upload-Length', 'POST', '/api/tus', { ...create, 'upload-length': '99999999999999999999' }, 400],
    ['too large Upload-Length', 'POST', '/api/tus', { ...create, 'upload-length': String(TUS_MAX_UPLOAD_LENGTH + 1) }, 413],
    ['deferred length', 'POST', '/api/tus', { ...create, 'upload-defer-length': '1' }, 400],
    ['concatenation', 'POST', '/api/tus', { ...create, 'upload-concat': 'partial' }, 400],
    ['no metadata', 'POST', '/api/tus', { ...base, 'upload-length': '10' }, 400],
    ['file name in metadata', 'POST', '/api/tus', { ...create, 'upload-metadata': `${metadata},filename ${btoa('secret.pdf')}` }, 400],
    ['other key', 'POST', '/api/tus', { ...create, 'upload-metadata': `filename ${btoa('x')}` }, 400],
    ['not base64', 'POST', '/api/tus', { ...create, 'upload-metadata': 'deliveryId !!!!' }, 400],
    ['not a uuid', 'POST', '/api/tus', { ...create, 'upload-metadata': `deliveryId ${btoa('1 OR 1=1')}` }, 400],
    ['key without value', 'POST', '/api/tus', { ...create, 'upload-metadata': 'deliveryId' }, 400],
    ['creation with a wrong body type', 'POST', '/api/tus', { ...create, 'content-type': 'text/plain', 'content-length': '5' }, 415],
    ['creation body beyond length', 'POST', '/api/tus', { ...create, 'content-type': 'application/offset+octet-stream', 'content-length': '1001' }, 413],
    ['offset on creation', 'POST', '/api/tus', { ...create, 'upload-offset': '0' }, 400],
    ['PATCH without Content-Type', 'PATCH', `/api/tus/${uploadId}`, { ...patch, 'content-type': '' }, 415],
    ['PATCH as JSON', 'PATCH', `/api/tus/${uploadId}`, { ...patch, 'content-type': 'application/json' }, 415],
    ['PATCH with parameters on the type', 'PATCH', `/api/tus/${uploadId}`, { ...patch, 'content-type': 'application/offset+octet-stream; x=1' }, 415],
    ['PATCH without offset', 'PATCH', `/api/tus/${uploadId}`, { ...base, 'content-type': 'application/offset+octet-stream' }, 400],
    ['PATCH negative offset', 'PATCH', `/api/tus/${uploadId}`, { ...patch, 'upload-offset': '-5' }, 400],
    ['PATCH offset with a space inside', 'PATCH', `/api/tus/${uploadId}`, { ...patch, 'upload-offset': '5 6' }, 400],
    ['PATCH fractional offset', 'PATCH', `/api/tus/${uploadId}`, { ...patch, 'upload-offset': '1.5' }, 400],
    ['PATCH sets the length late', 'PATCH', `/api/tus/${uploadId}`, { ...patch, 'upload-length': '10' }, 400],
    ['PATCH past any upload', 'PATCH', `/api/tus/${uploadId}`, { ...patch, 'upload-offset': String(TUS_MAX_UPLOAD_LENGTH) }, 400],
    ['HEAD with a body', 'HEAD', `/api/tus/${uploadId}`, { ...base, 'content-length': '3' }, 400],
    ['DELETE with an offset', 'DELETE', `/api/tus/${uploadId}`, { ...base, 'upload-offset': '0' }, 400],
  ];
  for (const [name, method, path, headers, status] of refused) {
    test(`refuses ${name} with ${status}`, () => {
      const v = r(method, path, Object.fromEntries(Object.entries(headers).filter(([, v]) => v !== '')));
      assert.equal(v.ok, false, name);
      if (!v.ok) assert.equal(v.status, status, `${name}: ${v.message}`);
    });
  }

  test('property: random mutations of valid requests never throw, and what passes is well-formed', () => {
    const rnd = prng(0x1a5c);
    const junk = ['', ' ', '-1', '0', '1', '1.0', '1e3', '0x1f', '٣', '１', 'NaN', 'Infinity', '9'.repeat(40), 'null', '"', "'", '\\', '%00', '\u0000'.replace('\u0000', ''), 'a'.repeat(9000), 'deliveryId', `deliveryId ${'A'.repeat(5000)}`, 'application/offset+octet-stream', 'application/json', 'text/html; charset=utf-8', '1.0.0', '1.0.1', '0.2.2'];
    const names = ['tus-resumable', 'upload-length', 'upload-offset', 'upload-metadata', 'content-type', 'content-length', 'inkast-sender-token', 'upload-defer-length', 'upload-concat', 'x-http-method-override'];
    const methods = ['POST', 'PATCH', 'HEAD', 'DELETE', 'OPTIONS', 'GET', 'PUT', 'TRACE', 'patch'];
    const paths = ['/api/tus', `/api/tus/${uploadId}`, '/api/tus/', '/api/tus/%2e%2e', `/api/tus/${uploadId.toUpperCase()}`, '/api/tusx', '/api/tus/a/b'];
    let passed = 0;
    for (let i = 0; i < 20_000; i++) {
      const method = rnd.pick(methods);
      const headers: Record<string, string> = { ...(method === 'PATCH' ? patch : create) };
      for (let k = rnd.int(4); k >= 0; k--) {
        const name = rnd.pick(names);
        if (rnd.next() < 0.3) delete headers[name];
        else headers[name] = rnd.pick(junk);
      }
      const path = rnd.pick(paths);
      let h: Headers;
      try {
        h = new Headers(headers);
      } catch {
        continue; // a value fetch itself refuses to send
      }
      const v = validateTusRequest({ method, url: `http://x${path}`, headers: h });
      if (!v.ok) {
        assert.ok(v.status >= 400 && v.status < 500, `status ${v.status}`);
        continue;
      }
      passed++;
      // Whatever passes is one of the well-formed shapes.
      if (method === 'OPTIONS') continue;
      assert.equal(h.get('tus-resumable'), '1.0.0');
      assert.match(h.get('inkast-sender-token') ?? '', /^[A-Za-z0-9_-]{43}$/);
      if (method.toUpperCase() === 'POST') {
        assert.match(h.get('upload-length') ?? '', /^[1-9][0-9]*$/);
        assert.ok(Number(h.get('upload-length')) <= TUS_MAX_UPLOAD_LENGTH);
        assert.equal(h.get('upload-metadata'), metadata);
      }
      if (method.toUpperCase() === 'PATCH') {
        assert.equal(h.get('content-type'), 'application/offset+octet-stream');
        assert.match(h.get('upload-offset') ?? '', /^(0|[1-9][0-9]*)$/);
      }
    }
    assert.ok(passed > 100, `only ${passed} valid requests were generated`);
  });
});
