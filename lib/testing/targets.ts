/**
 * Which real servers the tests run against. The embedded defaults (PGlite, local object
 * directory) always run; PostgreSQL and S3 join when they answer. CI sets
 * INKAST_TEST_REQUIRE_REAL=1 so that a missing server fails the run instead of shrinking it.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';

const requireReal = process.env.INKAST_TEST_REQUIRE_REAL === '1';

export interface DatabaseTarget {
  name: 'pglite' | 'postgres';
  /** A new empty database: its URL, or undefined for an in-memory PGlite. */
  freshDatabase(): Promise<string | undefined>;
}

export interface S3Settings {
  endpoint: string;
  accessKeyId: string;
  secretAccessKey: string;
  region: string;
}

function portAnswers(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect({ host, port, timeout: 1000 });
    s.once('connect', () => (s.destroy(), resolve(true)));
    s.once('error', () => resolve(false));
    s.once('timeout', () => (s.destroy(), resolve(false)));
  });
}

/** The admin URL of the real PostgreSQL the tests may use, if one answers. */
export async function postgresAdminUrl(): Promise<string | undefined> {
  const url = process.env.INKAST_TEST_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';
  const u = new URL(url);
  if (await portAnswers(u.hostname, Number(u.port || 5432))) return url;
  if (requireReal) throw new Error(`INKAST_TEST_REQUIRE_REAL=1 but PostgreSQL does not answer at ${u.host}`);
  console.log(`# PostgreSQL not reachable at ${u.host}: running on PGlite only`);
  return undefined;
}

/** Creates a new database on the real server and returns its URL. */
export async function createPostgresDatabase(adminUrl: string): Promise<string> {
  const pg = (await import('pg')).default;
  const name = `inkast_test_${crypto.randomBytes(6).toString('hex')}`;
  const client = new pg.Client({ connectionString: adminUrl });
  await client.connect();
  try {
    await client.query(`CREATE DATABASE ${name}`);
  } finally {
    await client.end();
  }
  const u = new URL(adminUrl);
  u.pathname = `/${name}`;
  return u.toString();
}

export async function databaseTargets(): Promise<DatabaseTarget[]> {
  const targets: DatabaseTarget[] = [{ name: 'pglite', freshDatabase: async () => undefined }];
  const admin = await postgresAdminUrl();
  if (admin) targets.push({ name: 'postgres', freshDatabase: () => createPostgresDatabase(admin) });
  return targets;
}

function readEnvFile(file: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const line of fs.readFileSync(file, 'utf8').split('\n')) {
    const m = /^([A-Z0-9_]+)=(.*)$/.exec(line.trim());
    if (m) out[m[1]] = m[2];
  }
  return out;
}

/** The S3 server the tests may use (Ceph RGW from scripts/ceph-rgw-start.sh), if one answers. */
export async function s3Settings(): Promise<S3Settings | undefined> {
  const envFile =
    process.env.INKAST_TEST_S3_ENV ?? path.join(process.env.TMPDIR ?? os.tmpdir(), 'inkast-ceph', 's3.env');
  const env = fs.existsSync(envFile) ? readEnvFile(envFile) : {};
  const endpoint = env.S3_ENDPOINT;
  if (endpoint) {
    const u = new URL(endpoint);
    if (await portAnswers(u.hostname, Number(u.port || 80))) {
      return {
        endpoint,
        accessKeyId: env.AWS_ACCESS_KEY_ID,
        secretAccessKey: env.AWS_SECRET_ACCESS_KEY,
        region: env.AWS_REGION ?? 'us-east-1',
      };
    }
  }
  if (requireReal) throw new Error(`INKAST_TEST_REQUIRE_REAL=1 but no S3 server answers (env file ${envFile})`);
  console.log('# no S3 server answers: running on the local object directory only');
  return undefined;
}
