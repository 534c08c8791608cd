/**
 * The embedded database's own memory: lib/db's PGlite, opened as the app opens it (settings,
 * migrations), in a Node process that does nothing else. Run it twice on one directory: the first
 * run creates the database, the second is a restart, as the app's "restarted" idle row.
 *
 * Usage: node --expose-gc --import tsx bench/tools/pglite-alone.ts <dir>
 * Prints {"before": <RSS bytes>, "open": <RSS bytes>}: idle before opening and idle after.
 */
import { openDb } from '@/lib/db';

const settle = async () => {
  await new Promise((r) => setTimeout(r, 3000));
  (globalThis as { gc?: () => void }).gc?.();
};

await settle();
const before = process.memoryUsage().rss;
const db = await openDb({ pgliteDir: process.argv[2] });
await db.query('SELECT count(*) FROM mailboxes');
await settle();
const open = process.memoryUsage().rss;
await db.close();
process.stdout.write(`${JSON.stringify({ before, open })}\n`);
