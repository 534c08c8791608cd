import fs from 'node:fs';
import path from 'node:path';
import { config } from '@/lib/config';
import { migrate } from './migrate';

export interface QueryResult<T> {
  rows: T[];
  rowCount: number;
}

/** Anything that runs SQL: the database itself or an open transaction. */
export interface Queryable {
  query<T = Record<string, unknown>>(sql: string, params?: unknown[]): Promise<QueryResult<T>>;
}

export interface Db extends Queryable {
  readonly kind: 'pglite' | 'postgres';
  /** Runs fn in one transaction; commits when it resolves, rolls back when it throws. */
  transaction<T>(fn: (tx: Queryable) => Promise<T>): Promise<T>;
  close(): Promise<void>;
}

export interface OpenOptions {
  /** A postgres:// URL; without it, PGlite in `pgliteDir` (in memory when that is undefined too). */
  databaseUrl?: string;
  pgliteDir?: string;
}

async function openPostgres(url: string): Promise<Db> {
  const pg = (await import('pg')).default;
  // Sizes pass 2^31: read int8 as a JS number (exact below 2^53, far above any delivery).
  pg.types.setTypeParser(20, (v: string) => Number(v));
  const pool = new pg.Pool({ connectionString: url, max: 10 });
  // A dropped connection must not crash the process; the next query gets a fresh one.
  pool.on('error', () => {});
  const wrap = (c: { query: (s: string, p?: unknown[]) => Promise<{ rows: unknown[]; rowCount: number | null }> }): Queryable => ({
    async query<T>(sql: string, params?: unknown[]) {
      const r = await c.query(sql, params);
      return { rows: r.rows as T[], rowCount: r.rowCount ?? 0 };
    },
  });
  const self = wrap(pool);
  return {
    kind: 'postgres',
    query: self.query,
    async transaction<T>(fn: (tx: Queryable) => Promise<T>) {
      const client = await pool.connect();
      try {
        await client.query('BEGIN');
        const out = await fn(wrap(client));
        await client.query('COMMIT');
        return out;
      } catch (err) {
        await client.query('ROLLBACK').catch(() => {});
        throw err;
      } finally {
        client.release();
      }
    },
    close: () => pool.end(),
  };
}

/**
 * PGlite is one process's database: a second process opening the same directory corrupts it
 * without an error. A lock file holding the owner's pid keeps a CLI command off a running app's data.
 */
function lockPgliteDir(dir: string): () => void {
  const lock = `${dir}.lock`;
  for (;;) {
    try {
      fs.writeFileSync(lock, String(process.pid), { flag: 'wx' });
      return () => fs.rmSync(lock, { force: true });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      const owner = Number(fs.readFileSync(lock, 'utf8'));
      if (owner === process.pid) throw new Error(`${dir} is already open in this process`);
      if (owner && isAlive(owner)) {
        throw new Error(
          `The embedded database ${dir} is in use by process ${owner} (the running app?). ` +
            'Stop it first, or set DATABASE_URL to share a PostgreSQL server between processes.',
        );
      }
      fs.rmSync(lock, { force: true }); // left by a process that died
    }
  }
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * The embedded database lives in the app's own memory: PostgreSQL's default 128 MB of shared
 * buffers would cost the server ~140 MiB RSS for an app database that is small and mostly cached
 * by the file system anyway.
 */
const PGLITE_SETTINGS = ['-c', 'shared_buffers=16MB'];

async function openPglite(dir: string | undefined): Promise<Db> {
  const { PGlite } = await import('@electric-sql/pglite');
  let unlock = () => {};
  if (dir) {
    fs.mkdirSync(path.dirname(dir), { recursive: true });
    unlock = lockPgliteDir(dir);
  }
  let lite: InstanceType<typeof PGlite>;
  try {
    const open = async () => {
      const instance = new PGlite({ dataDir: dir, startParams: [...PGlite.defaultStartParams, ...PGLITE_SETTINGS] });
      await instance.waitReady;
      return instance;
    };
    const created = dir !== undefined && !fs.existsSync(path.join(dir, 'PG_VERSION'));
    lite = await open();
    // initdb's memory stays in its WebAssembly instance for good; a fresh instance starts without it.
    if (created) {
      await lite.close();
      lite = await open();
    }
  } catch (err) {
    unlock();
    throw err;
  }
  const wrap = (c: { query: (s: string, p?: unknown[]) => Promise<{ rows: unknown[]; affectedRows?: number }> }): Queryable => ({
    async query<T>(sql: string, params?: unknown[]) {
      const r = await c.query(sql, params);
      return { rows: r.rows as T[], rowCount: r.affectedRows || r.rows.length };
    },
  });
  return {
    kind: 'pglite',
    query: wrap(lite).query,
    transaction: (fn) => lite.transaction((tx) => fn(wrap(tx))),
    close: async () => {
      await lite.close();
      unlock();
    },
  };
}

/** Opens a database and applies every pending migration. */
export async function openDb(opts: OpenOptions): Promise<Db> {
  const db = opts.databaseUrl ? await openPostgres(opts.databaseUrl) : await openPglite(opts.pgliteDir);
  try {
    await migrate(db);
  } catch (err) {
    await db.close().catch(() => {});
    throw err;
  }
  return db;
}

// Next evaluates modules twice in one process (instrumentation and route handlers): the
// connection lives on globalThis so both share one, and a promise so concurrent callers open once.
const g = globalThis as typeof globalThis & { __inkastDb?: Promise<Db> };

/** The process's database, opened from config on first use. */
export function db(): Promise<Db> {
  if (!g.__inkastDb) {
    const c = config();
    g.__inkastDb = openDb({ databaseUrl: c.databaseUrl, pgliteDir: path.join(c.dataDir, 'pglite') });
    g.__inkastDb.catch(() => {
      g.__inkastDb = undefined;
    });
  }
  return g.__inkastDb;
}

/** Closes the process's database, if one was opened (graceful shutdown). */
export async function closeDb(): Promise<void> {
  const p = g.__inkastDb;
  g.__inkastDb = undefined;
  if (p) await (await p).close();
}
