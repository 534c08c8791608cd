import assert from 'node:assert/strict';
import { test } from 'node:test';
import { migrations } from './migrations';
import { openDb } from './index';
import { databaseTargets } from '@/lib/testing/targets';

for (const target of await databaseTargets()) {
  test(`data layer on ${target.name}`, async (t) => {
    const url = await target.freshDatabase();
    const db = await openDb(url ? { databaseUrl: url } : {});
    t.after(() => db.close());

    await t.test('migrations are applied once, in order', async () => {
      const rows = (await db.query<{ version: string }>('SELECT version FROM schema_migrations ORDER BY version')).rows;
      assert.deepEqual(rows.map((r) => r.version), migrations.map((m) => m.version));
    });

    await t.test('large sizes and bytes round-trip', async () => {
      const r = await db.query<{ n: number; b: Uint8Array }>('SELECT $1::bigint AS n, $2::bytea AS b', [
        5_000_000_123,
        new Uint8Array([0, 255, 7]),
      ]);
      assert.equal(r.rows[0].n, 5_000_000_123);
      assert.deepEqual([...r.rows[0].b], [0, 255, 7]);
    });

    await t.test('a failed transaction leaves nothing behind', async () => {
      await assert.rejects(
        db.transaction(async (tx) => {
          await tx.query(`INSERT INTO settings (key, value) VALUES ('rollback-probe', 'x')`);
          throw new Error('boom');
        }),
        /boom/,
      );
      const r = await db.query(`SELECT 1 FROM settings WHERE key = 'rollback-probe'`);
      assert.equal(r.rows.length, 0);
    });

    await t.test('jobs can be claimed with SKIP LOCKED', async () => {
      await db.query(`INSERT INTO jobs (kind) VALUES ('probe')`);
      const claimed = await db.transaction((tx) =>
        tx.query<{ id: number }>(
          `SELECT id FROM jobs WHERE kind = 'probe' AND state = 'queued' ORDER BY id FOR UPDATE SKIP LOCKED LIMIT 1`,
        ),
      );
      assert.equal(claimed.rows.length, 1);
    });
  });
}
