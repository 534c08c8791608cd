/**
 * The audit log as an administrator reads it, in process on PGlite and PostgreSQL: the filters,
 * pagination, the emails beside the ids, the refusals, and the streamed CSV and JSON exports.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { db, type Queryable } from '@/lib/db';
import { MailboxError } from '@/lib/mailboxes';
import { useFreshProcessState } from '@/lib/testing/process';
import { databaseTargets } from '@/lib/testing/targets';
import { audit, verifyAuditLog, type AuditEvent } from './index';
import { auditCsv, auditJson, csvField, exportAuditEntries, listAuditEntries, parseAuditFilter, type AuditFilter } from './list';

async function collect(chunks: AsyncIterable<string>): Promise<string> {
  let out = '';
  for await (const c of chunks) out += c;
  return out;
}

/** A minimal RFC 4180 reader, enough to read back what the export wrote. */
function parseCsv(text: string): string[][] {
  const rows: string[][] = [];
  let row: string[] = [];
  let cell = '';
  let quoted = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (quoted) {
      if (c === '"' && text[i + 1] === '"') (cell += '"'), i++;
      else if (c === '"') quoted = false;
      else cell += c;
    } else if (c === '"') quoted = true;
    else if (c === ',') row.push(cell), (cell = '');
    else if (c === '\r' && text[i + 1] === '\n') {
      row.push(cell), rows.push(row), (row = []), (cell = ''), i++;
    } else cell += c;
  }
  assert.equal(cell + row.join(''), '', 'the CSV ends with a line end');
  return rows;
}

function rejectsFilter(input: Record<string, string>, field: string) {
  assert.throws(
    () => parseAuditFilter(input),
    (err: unknown) => {
      assert.ok(err instanceof MailboxError, String(err));
      assert.equal(err.status, 400);
      assert.equal(err.code, 'invalid-filter');
      assert.ok((err as MailboxError & { fields: string[] }).fields.includes(field), `${JSON.stringify(input)} blames ${field}`);
      return true;
    },
  );
}

const list = (q: Queryable, filter: AuditFilter, limit = 100, offset = 0) => listAuditEntries(q, filter, { limit, offset });
const actions = (r: { entries: { action: string }[] }) => r.entries.map((e) => e.action);

for (const target of await databaseTargets()) {
  test(`reading the audit log on ${target.name}`, async (t) => {
    const url = await target.freshDatabase();
    await useFreshProcessState(url ? { DATABASE_URL: url } : {});
    const q = await db();
    const [anna, bo] = (
      await q.query<{ id: string }>(
        `INSERT INTO users (email, display_name, role) VALUES ('anna@example.org', 'Anna', 'admin'), ('bo@example.org', 'Bo', 'handler') RETURNING id`,
      )
    ).rows.map((r) => r.id);
    const mailbox = '11111111-1111-4111-8111-111111111111';
    const write = (e: AuditEvent) => q.transaction((tx) => audit(tx, e));

    await write({ actor: `user:${anna}`, action: 'auth.signed-in', target: `user:${anna}`, detail: { method: 'email-link' } });
    await write({ actor: `user:${bo}`, action: 'auth.signed-in', target: `user:${bo}`, detail: { method: 'oidc' } });
    await write({ actor: `user:${anna}`, action: 'mailbox.link-rotated', target: `mailbox:${mailbox}` });
    await write({ actor: `user:${anna}`, action: 'mailbox.policy-changed', target: `mailbox:${mailbox}`, detail: { retentionDays: 7 } });
    await write({ actor: 'sender:bo@example.org', action: 'sender.verified', target: `mailbox:${mailbox}` });
    await write({ actor: 'system', action: 'delivery.deleted', target: 'delivery:22222222-2222-4222-8222-222222222222', detail: { reason: 'retention' } });
    await write({ actor: `user:${bo}`, action: 'mailboxes.imaginary', target: `user:${anna}` });

    await t.test('newest first, with the emails of the users the actor and target name', async () => {
      const all = await list(q, {});
      assert.equal(all.total, 7);
      assert.deepEqual(all.entries.map((e) => e.id), [7, 6, 5, 4, 3, 2, 1]);
      const last = all.entries[0];
      assert.equal(last.actor, `user:${bo}`);
      assert.equal(last.actorEmail, 'bo@example.org');
      assert.equal(last.targetEmail, 'anna@example.org');
      const system = all.entries.find((e) => e.actor === 'system')!;
      assert.equal(system.actorEmail, null);
      assert.equal(system.targetEmail, null);
      assert.deepEqual(system.detail, { reason: 'retention' });
    });

    await t.test('by actor: an email finds that user and that sender; system; a raw actor', async () => {
      assert.deepEqual(actions(await list(q, parseAuditFilter({ actor: 'Anna@Example.org ' }))), ['mailbox.policy-changed', 'mailbox.link-rotated', 'auth.signed-in']);
      assert.deepEqual(actions(await list(q, parseAuditFilter({ actor: 'bo@example.org' }))), ['mailboxes.imaginary', 'sender.verified', 'auth.signed-in']);
      assert.deepEqual(actions(await list(q, parseAuditFilter({ actor: 'system' }))), ['delivery.deleted']);
      assert.deepEqual(actions(await list(q, parseAuditFilter({ actor: `user:${bo}` }))), ['mailboxes.imaginary', 'auth.signed-in']);
      assert.equal((await list(q, parseAuditFilter({ actor: 'nobody@example.org' }))).total, 0);
    });

    await t.test('by action, exact or by prefix (a prefix is a whole segment)', async () => {
      assert.equal((await list(q, parseAuditFilter({ action: 'auth.signed-in' }))).total, 2);
      assert.equal((await list(q, parseAuditFilter({ action: 'auth.signed' }))).total, 0, 'no dot at the end: exact');
      assert.deepEqual(actions(await list(q, parseAuditFilter({ action: 'mailbox.' }))), ['mailbox.policy-changed', 'mailbox.link-rotated']);
    });

    await t.test('by target, and filters combine', async () => {
      assert.deepEqual(actions(await list(q, parseAuditFilter({ target: `mailbox:${mailbox}` }))), ['sender.verified', 'mailbox.policy-changed', 'mailbox.link-rotated']);
      assert.deepEqual(actions(await list(q, parseAuditFilter({ target: `mailbox:${mailbox}`, actor: 'anna@example.org', action: 'mailbox.policy-changed' }))), ['mailbox.policy-changed']);
    });

    await t.test('by days, inclusive, in Swedish time', async () => {
      // 23:30 on 31 January in Stockholm is already 1 February there, though still January in UTC.
      await q.query(`UPDATE audit_log SET at = '2025-01-31T23:30:00Z' WHERE id = 1`);
      await q.query(`UPDATE audit_log SET at = '2025-01-31T22:59:59.999Z' WHERE id = 2`);
      assert.deepEqual((await list(q, parseAuditFilter({ from: '2025-02-01', to: '2025-02-01' }))).entries.map((e) => e.id), [1]);
      assert.deepEqual((await list(q, parseAuditFilter({ from: '2025-01-31', to: '2025-01-31' }))).entries.map((e) => e.id), [2]);
      assert.deepEqual((await list(q, parseAuditFilter({ to: '2025-02-01' }))).entries.map((e) => e.id), [2, 1]);
      assert.equal((await list(q, parseAuditFilter({ from: '2025-02-02' }))).total, 5);
      // The edits above broke the chain, as they should; the listing shows the rows regardless.
      assert.equal((await verifyAuditLog(q)).ok, false);
    });

    await t.test('pages: limit and offset, the total unchanged', async () => {
      const one = await list(q, {}, 3, 0);
      const two = await list(q, {}, 3, 3);
      const three = await list(q, {}, 3, 6);
      assert.deepEqual([one, two, three].map((p) => p.total), [7, 7, 7]);
      assert.deepEqual([...one.entries, ...two.entries, ...three.entries].map((e) => e.id), [7, 6, 5, 4, 3, 2, 1]);
      await assert.rejects(list(q, {}, 0), RangeError);
      await assert.rejects(list(q, {}, 10, -1), RangeError);
    });

    await t.test('a bad filter is a 400 naming the field', () => {
      rejectsFilter({ actor: 'not an address' }, 'actor');
      rejectsFilter({ actor: "user:'; DROP TABLE audit_log" }, 'actor');
      rejectsFilter({ action: 'Auth Signed In' }, 'action');
      rejectsFilter({ action: 'mailbox.%' }, 'action');
      rejectsFilter({ target: 'mailbox' }, 'target');
      rejectsFilter({ from: '2025-02-30' }, 'from');
      rejectsFilter({ to: 'yesterday' }, 'to');
      rejectsFilter({ from: '2025-03-02', to: '2025-03-01' }, 'to');
      assert.deepEqual(parseAuditFilter({ actor: '', action: ' ', page: '3', format: 'csv' }), {}, 'empty fields and other keys are no filter');
      assert.deepEqual(parseAuditFilter(new URLSearchParams('action=mailbox.&from=2025-01-01')), { action: 'mailbox.', from: '2025-01-01' });
    });

    await t.test('CSV: a header, RFC 4180 quoting, and no formula survives into a spreadsheet', async () => {
      // An address may legally start with = or +: a user could be named so to plant a formula.
      const evilUser = (await q.query<{ id: string }>(`INSERT INTO users (email, display_name, role) VALUES ('=hyperlink("http://evil.example")@example.org', 'E', 'handler') RETURNING id`)).rows[0].id;
      await write({ actor: `user:${evilUser}`, action: 'sender.code-sent', target: '@SUM(A1):x', detail: { note: 'a "quoted", comma\nand a line' } });
      await write({ actor: '+cmd@example.org', action: 'test.plus', target: '-1+1:x' });
      const text = await collect(auditCsv(exportAuditEntries(q, parseAuditFilter({ action: 'sender.' }))));
      const rows = parseCsv(text);
      assert.deepEqual(rows[0], ['id', 'at', 'actor', 'actor_email', 'action', 'target', 'target_email', 'detail', 'hash', 'prev_hash']);
      const evil = rows.find((r) => r[4] === 'sender.code-sent')!;
      assert.equal(evil[3], `'=hyperlink("http://evil.example")@example.org`, 'not a formula: it does not start with =');
      assert.equal(evil[5], `'@SUM(A1):x`);
      assert.deepEqual(JSON.parse(evil[7]), { note: 'a "quoted", comma\nand a line' });
      assert.match(evil[8], /^[0-9a-f]{64}$/);
      assert.match(evil[9], /^[0-9a-f]{64}$/);
      const sender = rows.find((r) => r[4] === 'sender.verified')!;
      assert.equal(sender[2], 'sender:bo@example.org');
      assert.equal(sender[3], '', 'a sender is no user');
      const signIn = parseCsv(await collect(auditCsv(exportAuditEntries(q, parseAuditFilter({ action: 'auth.signed-in', actor: 'anna@example.org' })))));
      assert.equal(signIn.length, 2);
      assert.equal(signIn[1][3], 'anna@example.org');
      assert.equal(signIn[1][1], '2025-01-31T23:30:00.000Z');
      assert.equal(signIn[1][9], '', 'the first entry has no previous hash');
      const plus = parseCsv(await collect(auditCsv(exportAuditEntries(q, parseAuditFilter({ action: 'test.plus' })))))[1];
      assert.equal(plus[2], `'+cmd@example.org`);
      assert.equal(plus[5], `'-1+1:x`);
      for (const [value, cell] of [
        ['plain', 'plain'],
        ['=1+2', `'=1+2`],
        ['\t=1', `'\t=1`],
        ['a,b', '"a,b"'],
        ['say "hi"', '"say ""hi"""'],
        ['-"x",', `"'-""x"","`],
        ['', ''],
      ]) {
        assert.equal(csvField(value), cell, value);
      }
    });

    await t.test('JSON: one array that JSON.parse reads, the same fields as the CSV', async () => {
      const text = await collect(auditJson(exportAuditEntries(q, parseAuditFilter({ actor: 'bo@example.org' }))));
      const parsed = JSON.parse(text) as Record<string, unknown>[];
      assert.deepEqual(parsed.map((e) => e.action), ['auth.signed-in', 'sender.verified', 'mailboxes.imaginary'], 'oldest first, chain order');
      assert.equal(parsed[2].actor_email, 'bo@example.org');
      assert.equal(parsed[2].target_email, 'anna@example.org');
      assert.deepEqual(parsed[0].detail, { method: 'oidc' });
      assert.deepEqual(JSON.parse(await collect(auditJson(exportAuditEntries(q, parseAuditFilter({ actor: 'nobody@example.org' })))))   , []);
    });

    await t.test('the export streams 5,000 entries a page at a time, complete and in order', async () => {
      await q.query('DELETE FROM audit_log');
      // Straight rows: the chain is not what this test is about, and 5,000 locked appends are slow.
      await q.query(
        `INSERT INTO audit_log (id, at, actor, action, target, detail, hash)
         SELECT i, now(), 'system', CASE WHEN i % 2 = 0 THEN 'bulk.even' ELSE 'bulk.odd' END, 'n:' || i, jsonb_build_object('i', i), '\\x00'
           FROM generate_series(1, 10000) i`,
      );
      const pages: number[] = [];
      const ids: number[] = [];
      for await (const page of exportAuditEntries(q, parseAuditFilter({ action: 'bulk.even' }), { pageSize: 1000 })) {
        pages.push(page.length);
        ids.push(...page.map((e) => e.id));
      }
      assert.deepEqual(pages, [1000, 1000, 1000, 1000, 1000]);
      assert.deepEqual(ids, Array.from({ length: 5000 }, (_, i) => 2 * (i + 1)));

      const parsed = JSON.parse(await collect(auditJson(exportAuditEntries(q, parseAuditFilter({ action: 'bulk.even' }))))) as { id: number }[];
      assert.equal(parsed.length, 5000);
      assert.deepEqual(parsed.map((e) => e.id), ids);
      const csv = parseCsv(await collect(auditCsv(exportAuditEntries(q, parseAuditFilter({ action: 'bulk.even' })))));
      assert.equal(csv.length, 5001);
      assert.deepEqual(csv.slice(1).map((r) => Number(r[0])), ids);
    });

    await t.test('the export stops at the entry that was newest when it began', async () => {
      const pages = exportAuditEntries(q, parseAuditFilter({ action: 'bulk.' }), { pageSize: 1000 });
      const first = await pages.next();
      await q.query(`INSERT INTO audit_log (id, actor, action, hash) VALUES (10001, 'system', 'bulk.late', '\\x00')`);
      let count = first.done ? 0 : first.value.length;
      for await (const page of pages) count += page.length;
      assert.equal(count, 10000);
    });
  });
}
