import assert from 'node:assert/strict';
import { test } from 'node:test';
import { openDb, type Db } from '@/lib/db';
import { databaseTargets } from '@/lib/testing/targets';
import { audit, verifyAuditLog } from './index';

const actor = 'user:00000000-0000-4000-8000-000000000001';

async function write(db: Db, n: number, action = 'test.event'): Promise<void> {
  for (let i = 0; i < n; i++) {
    await db.transaction((tx) => audit(tx, { actor, action, target: `file:${i}`, detail: { i, nested: { b: [1, 'två', null], a: true } } }));
  }
}

for (const target of await databaseTargets()) {
  test(`audit log on ${target.name}`, async (t) => {
    const url = await target.freshDatabase();
    const db = await openDb(url ? { databaseUrl: url } : {});
    t.after(() => db.close());

    await t.test('an empty log verifies', async () => {
      assert.deepEqual(await verifyAuditLog(db), { ok: true, entries: 0 });
    });

    await t.test('an untouched chain verifies, across pages', async () => {
      await write(db, 1005);
      assert.deepEqual(await verifyAuditLog(db), { ok: true, entries: 1005 });
      const first = (await db.query<{ prev_hash: Uint8Array | null; detail: unknown }>('SELECT prev_hash, detail FROM audit_log WHERE id = 1')).rows[0];
      assert.equal(first.prev_hash, null);
      assert.deepEqual(first.detail, { i: 0, nested: { a: true, b: [1, 'två', null] } });
    });

    await t.test('a rolled-back writer leaves no gap', async () => {
      await assert.rejects(
        db.transaction(async (tx) => {
          await audit(tx, { actor, action: 'test.rolled-back' });
          throw new Error('boom');
        }),
        /boom/,
      );
      await write(db, 1);
      assert.deepEqual(await verifyAuditLog(db), { ok: true, entries: 1006 });
    });

    await t.test('content is refused in details', async () => {
      await assert.rejects(
        // @ts-expect-error: the type forbids it too
        db.transaction((tx) => audit(tx, { actor, action: 'x', detail: { subject: 'Remiss' } })),
        /may not carry "detail.subject"/,
      );
      await assert.rejects(
        db.transaction((tx) => audit(tx, { actor, action: 'x', detail: { files: [] } as never })),
        /detail.files/,
      );
      await assert.rejects(
        db.transaction((tx) => audit(tx, { actor, action: 'x', detail: { list: [{ fileName: 'a.pdf' }] } })),
        /detail.list\[0\].fileName/,
      );
    });

    await t.test('an edited detail is found and named', async () => {
      await db.query(`UPDATE audit_log SET detail = jsonb_set(detail, '{i}', '999') WHERE id = 500`);
      assert.deepEqual(await verifyAuditLog(db), { ok: false, entryId: 500, problem: 'changed', reason: 'entry 500 was changed after it was written (hash differs)' });
      await db.query(`UPDATE audit_log SET detail = jsonb_set(detail, '{i}', '499') WHERE id = 500`);
      assert.equal((await verifyAuditLog(db)).ok, true, 'restoring the value restores the chain');
    });

    await t.test('an edited actor, time or target is found', async () => {
      for (const change of [`actor = 'system'`, `at = at + interval '1 second'`, `target = NULL`]) {
        const saved = (await db.query<Record<string, unknown>>('SELECT actor, at, target FROM audit_log WHERE id = 7')).rows[0];
        await db.query(`UPDATE audit_log SET ${change} WHERE id = 7`);
        const r = await verifyAuditLog(db);
        assert.equal(r.ok, false, change);
        assert.equal(!r.ok && r.entryId, 7, change);
        await db.query('UPDATE audit_log SET actor = $1, at = $2, target = $3 WHERE id = 7', [saved.actor, saved.at, saved.target]);
      }
      assert.equal((await verifyAuditLog(db)).ok, true);
    });

    await t.test('a deleted row is found and named, first row included', async () => {
      await db.query('DELETE FROM audit_log WHERE id = 300');
      assert.deepEqual(await verifyAuditLog(db), { ok: false, entryId: 300, problem: 'missing', reason: 'entry 300 is missing (the next is 301)' });
      // Renumbering to hide the gap breaks the link instead.
      await db.query('UPDATE audit_log SET id = 300 WHERE id = 301');
      const r = await verifyAuditLog(db);
      assert.equal(!r.ok && r.entryId, 300);
      assert.match(!r.ok ? r.reason : '', /prev_hash|hash differs/);
      await db.query('DELETE FROM audit_log WHERE id = 1');
      assert.deepEqual(await verifyAuditLog(db), { ok: false, entryId: 1, problem: 'missing', reason: 'entry 1 is missing (the next is 2)' });
    });
  });

  test(`concurrent audit writers chain correctly on ${target.name}`, async (t) => {
    const url = await target.freshDatabase();
    // Two connection pools on Postgres, as two app instances would have; PGlite has one connection.
    const a = await openDb(url ? { databaseUrl: url } : {});
    const b = url ? await openDb({ databaseUrl: url }) : a;
    t.after(async () => {
      await a.close();
      if (b !== a) await b.close();
    });
    const writers = Array.from({ length: 40 }, (_, i) =>
      (i % 2 ? a : b).transaction(async (tx) => {
        // Work before and after, so transactions overlap while they hold or wait for the lock.
        await tx.query('SELECT pg_sleep(0.005)');
        await audit(tx, { actor: 'system', action: 'test.concurrent', detail: { i } });
        await tx.query('SELECT pg_sleep(0.005)');
      }),
    );
    await Promise.all(writers);
    assert.deepEqual(await verifyAuditLog(a), { ok: true, entries: 40 });
    const ids = (await a.query<{ i: number }>(`SELECT (detail->>'i')::int AS i FROM audit_log`)).rows.map((r) => r.i).sort((x, y) => x - y);
    assert.deepEqual(ids, Array.from({ length: 40 }, (_, i) => i));
  });
}
