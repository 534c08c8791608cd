/**
 * Rate limits in process, in memory (PGlite) and in PostgreSQL (when it answers): the settings,
 * the client address, each limit and its 429. Two built app instances sharing the limits through
 * one database are in cross-instance.test.ts.
 */
import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { test } from 'node:test';
import { requestSenderCode } from '@/lib/auth/sender-verification';
import { ConfigError, parseConfig } from '@/lib/config';
import { db } from '@/lib/db';
import { createDelivery } from '@/lib/deliveries';
import { createUser } from '@/lib/mailboxes';
import { useFreshProcessState } from '@/lib/testing/process';
import { databaseTargets } from '@/lib/testing/targets';
import {
  answerRateLimits,
  clientIp,
  limitCodeRequest,
  limitDeliveryCreation,
  limitSignIn,
  limitUploadBytes,
  normaliseIp,
  RateLimitError,
  rateLimitResponse,
} from './index';

async function refusedBy(p: Promise<unknown>, limit: RateLimitError['limit']): Promise<RateLimitError> {
  let caught: unknown;
  await assert.rejects(p, (err: unknown) => {
    caught = err;
    return err instanceof RateLimitError && err.limit === limit;
  });
  return caught as RateLimitError;
}

test('limits are <amount>/<window> or off; a bad one names the variable', () => {
  const r = parseConfig({
    INKAST_RATE_DELIVERIES_PER_IP: '30/15m',
    INKAST_RATE_UPLOAD_BYTES_PER_IP: '1.5GB/1d',
    INKAST_RATE_SIGN_IN_PER_IP: 'off',
  }).rateLimits;
  assert.deepEqual(r.deliveriesPerIp, { points: 30, durationMs: 15 * 60_000 });
  assert.deepEqual(r.uploadBytesPerIp, { points: 1_500_000_000, durationMs: 86_400_000 });
  assert.equal(r.signInPerIp, null);
  assert.deepEqual(r.codesPerAddress, { points: 5, durationMs: 3_600_000 }, 'the default');
  for (const bad of ['30', '30/h', 'x/1h', '30/1w', '-1/1h', '1PB/1d']) {
    assert.throws(() => parseConfig({ INKAST_RATE_CODES_PER_IP: bad }), (e: unknown) => e instanceof ConfigError && /INKAST_RATE_CODES_PER_IP/.test(e.message), bad);
  }
});

test('addresses become keys: IPv4 as is, IPv6 by its /64, anything else nothing', () => {
  assert.equal(normaliseIp('192.0.2.7'), '192.0.2.7');
  assert.equal(normaliseIp(' 192.0.2.7:51234 '), '192.0.2.7');
  assert.equal(normaliseIp('::ffff:192.0.2.7'), '192.0.2.7');
  assert.equal(normaliseIp('[2001:db8:1:2::7]:443'), '2001:db8:1:2::/64');
  assert.equal(normaliseIp('2001:0db8:0001:0002:aaaa:bbbb:cccc:dddd'), '2001:db8:1:2::/64');
  assert.equal(normaliseIp('2001:db8::1'), '2001:db8:0:0::/64');
  assert.equal(normaliseIp('fe80::1%eth0'), 'fe80:0:0:0::/64');
  assert.equal(normaliseIp('::1'), '0:0:0:0::/64');
  for (const bad of ['', 'unknown', 'evil.example', '999.1.1.1', '1.2.3.4, 5.6.7.8', undefined, null]) assert.equal(normaliseIp(bad), undefined, String(bad));
});

test('X-Forwarded-For counts only behind a trusted proxy; otherwise the TCP peer, whatever the client claims', async () => {
  await useFreshProcessState();
  const forged = { 'x-forwarded-for': '203.0.113.9, 10.0.0.1' };
  assert.equal(clientIp(new Request('http://inkast.test/', { headers: forged })), 'unknown', 'no socket in process');

  // Through a real HTTP server, the way next start receives requests.
  const peerHeader = (globalThis as { __inkastPeerHeader?: string }).__inkastPeerHeader!;
  assert.match(peerHeader, /^x-inkast-peer-[0-9a-f]{24}$/);
  const server = http.createServer((req, res) => {
    const headers = new Headers();
    for (const [k, v] of Object.entries(req.headers)) if (typeof v === 'string') headers.set(k, v);
    res.end(clientIp(headers));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/`;
  try {
    // Even a client that knows this process's header name cannot choose its address.
    assert.equal(await (await fetch(url, { headers: { ...forged, [peerHeader]: '198.51.100.1' } })).text(), '127.0.0.1');
    await useFreshProcessState({ INKAST_TRUST_PROXY: 'true' });
    assert.equal(await (await fetch(url, { headers: forged })).text(), '203.0.113.9');
    assert.equal(await (await fetch(url, { headers: { 'x-forwarded-for': 'garbage' } })).text(), '127.0.0.1', 'a malformed header falls back to the peer');
  } finally {
    server.close();
  }
});

test('the 429: JSON { error, message, retryAfter } and Retry-After', async () => {
  const res = rateLimitResponse(new RateLimitError('deliveriesPerIp', 754));
  assert.equal(res.status, 429);
  assert.equal(res.headers.get('retry-after'), '754');
  assert.equal(res.headers.get('cache-control'), 'no-store');
  assert.deepEqual(await res.json(), {
    error: 'rate-limited',
    message: 'Too many deliveries from your network right now; try again in 13 minutes',
    retryAfter: 754,
  });
  const wrapped = answerRateLimits(async () => {
    throw new RateLimitError('signInPerIp', 30);
  });
  const answered = await wrapped();
  assert.equal(answered.status, 429);
  assert.equal((await answered.json()).message, 'Too many sign-in requests from your network right now; try again in a minute');
  const other = answerRateLimits(async () => {
    throw new Error('boom');
  });
  await assert.rejects(other(), /boom/);
});

for (const target of await databaseTargets()) {
  test(`limits on ${target.name} (${target.name === 'postgres' ? 'shared' : 'in memory'})`, async (t) => {
    const databaseUrl = await target.freshDatabase();
    const env = {
      INKAST_RATE_DELIVERIES_PER_IP: '3/1h',
      INKAST_RATE_UPLOAD_BYTES_PER_IP: '3MB/1h',
      INKAST_RATE_CODES_PER_ADDRESS: '2/1h',
      INKAST_RATE_CODES_PER_IP: '4/1h',
      INKAST_RATE_SIGN_IN_PER_ADDRESS: '2/2s',
      INKAST_RATE_SIGN_IN_PER_IP: '5/1h',
      ...(databaseUrl ? { DATABASE_URL: databaseUrl } : {}),
    };
    await useFreshProcessState(env);
    const { mailbox } = await createUser({ email: 'mottagning@example.org', displayName: 'Mottagningen' });
    await (await db()).query(`UPDATE mailboxes SET require_verified_sender = true WHERE id = $1`, [mailbox.id]);
    const slug = mailbox.filedrop_slug;

    await t.test('deliveries per IP: the fourth is refused with the time left; another address is not', async () => {
      const open = (ip: string) => createDelivery({ slug: 'JxF12TrwUP45BeS8TJ7ZdJ', senderEmail: 'a@example.org' }, { ip }).catch((e: unknown) => e);
      for (let i = 0; i < 3; i++) assert.notEqual((await open('192.0.2.1') as Error).name, 'RateLimitError');
      const err = await refusedBy(limitDeliveryCreation('192.0.2.1'), 'deliveriesPerIp');
      assert.ok(err.retryAfter > 3500 && err.retryAfter <= 3600, `Retry-After ${err.retryAfter}`);
      assert.equal(err.status, 429);
      await refusedBy(createDelivery({ slug, senderEmail: 'a@example.org' }, { ip: '192.0.2.1' }), 'deliveriesPerIp');
      await limitDeliveryCreation('192.0.2.2');
      // In-process callers without an address are not counted.
      await createDelivery({ slug: (await createUser({ email: 'x@example.org', displayName: 'X' })).mailbox.filedrop_slug, senderEmail: 'a@example.org' });
    });

    await t.test('upload bytes per IP: a refused upload is not counted, a refunded one gives its bytes back', async () => {
      const ip = '192.0.2.20';
      const first = await limitUploadBytes(ip, 2_000_000);
      const big = await refusedBy(limitUploadBytes(ip, 2_000_000), 'uploadBytesPerIp');
      assert.ok(big.retryAfter > 3500);
      await limitUploadBytes(ip, 1_000_000); // the refused 2 MB did not count
      await refusedBy(limitUploadBytes(ip, 1), 'uploadBytesPerIp');
      await first.refund();
      await limitUploadBytes(ip, 2_000_000);
      await refusedBy(limitUploadBytes('192.0.2.21', 3_000_001), 'uploadBytesPerIp');
    });

    await t.test('codes per address (any case, any mailbox) and per IP', async () => {
      await limitCodeRequest('192.0.2.30', 'Vera@Example.org');
      await limitCodeRequest('192.0.2.31', 'vera@example.org');
      await refusedBy(limitCodeRequest('192.0.2.32', ' VERA@example.org '), 'codesPerAddress');
      // Through the module: the 429 comes before anything is looked up or mailed.
      await refusedBy(requestSenderCode({ slug, email: 'vera@example.org' }, { ip: '192.0.2.33' }), 'codesPerAddress');
      const ip = '192.0.2.40';
      for (let i = 0; i < 4; i++) await limitCodeRequest(ip, `person${i}@example.org`);
      await refusedBy(limitCodeRequest(ip, 'person9@example.org'), 'codesPerIp');
      assert.equal((await (await db()).query(`SELECT 1 FROM outbox WHERE to_address LIKE 'vera%'`)).rows.length, 0);
    });

    await t.test('sign-in links per address and per IP; the window ends', async () => {
      await limitSignIn('192.0.2.50', 'anna@example.org');
      await limitSignIn('192.0.2.51', 'ANNA@example.org');
      const err = await refusedBy(limitSignIn('192.0.2.52', 'anna@example.org'), 'signInPerAddress');
      assert.ok(err.retryAfter >= 1 && err.retryAfter <= 2);
      await new Promise((r) => setTimeout(r, err.retryAfter * 1000 + 100));
      await limitSignIn('192.0.2.52', 'anna@example.org');
      for (let i = 0; i < 5; i++) await limitSignIn('192.0.2.60', `u${i}@example.org`);
      await refusedBy(limitSignIn('192.0.2.60', 'u9@example.org'), 'signInPerIp');
    });

    await t.test(target.name === 'postgres' ? 'the counts live in the database: a new instance sees them' : 'the counts live in this process', async () => {
      // A fresh configuration builds fresh limiters, as a second instance would.
      delete (globalThis as { __inkastConfig?: unknown }).__inkastConfig;
      const again = limitDeliveryCreation('192.0.2.1');
      if (target.name === 'postgres') {
        await refusedBy(again, 'deliveriesPerIp');
        const rows = (await (await db()).query<{ key: string }>(`SELECT key FROM rate_limits`)).rows;
        assert.ok(rows.length > 0);
        assert.ok(rows.every((r) => !/@|192\.0\.2/.test(r.key)), 'keys are hashed: no address in the table');
      } else {
        await again;
      }
    });
  });
}
