/**
 * In-process tests of the modules: point this process's configuration at a fresh data directory
 * (and optionally S3 or PostgreSQL), forgetting every process-wide singleton opened before.
 */
import { after } from 'node:test';
import { closeDb } from '@/lib/db';
import { closeUploads } from '@/lib/uploads';
import { newDataDir } from './app';

const SINGLETONS = ['__inkastConfig', '__inkastDb', '__inkastObjectStore', '__inkastTus', '__inkastMasterKey', '__inkastPreviousMasterKey', '__inkastBoot'];
const CONFIG_KEYS = /^(INKAST_|S3_|SMTP_URL$|DATABASE_URL$|MAIL_FROM$)/;

export async function useFreshProcessState(env: Record<string, string> = {}): Promise<{ dataDir: string }> {
  await closeUploads();
  await closeDb();
  const g = globalThis as Record<string, unknown>;
  for (const name of SINGLETONS) delete g[name];
  for (const key of Object.keys(process.env)) if (CONFIG_KEYS.test(key)) delete process.env[key];
  const dataDir = env.INKAST_DATA_DIR ?? newDataDir();
  Object.assign(process.env, { INKAST_DATA_DIR: dataDir, INKAST_LOG_LEVEL: 'silent', INKAST_WORKER: 'false', ...env });
  // Whatever this state opens (database, lock connection) is closed when the calling test ends,
  // so the test file's process can exit.
  after(async () => {
    await closeUploads();
    await closeDb();
  });
  return { dataDir };
}
