/**
 * For tests: the clamd that scripts/clamd-start.sh started (its env file), if it answers, and the
 * EICAR test file. CI sets INKAST_TEST_REQUIRE_REAL=1, so a missing clamd fails the run there.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { clamdPing } from './clamd';

export interface ClamdTestTarget {
  host: string;
  port: number;
  socket: string | undefined;
  /** For the app's environment. */
  env: Record<string, string>;
}

/** The clamd of scripts/clamd-start.sh, or undefined (skip) when none answers outside CI. */
export async function clamdTestTarget(): Promise<ClamdTestTarget | undefined> {
  const file = process.env.INKAST_TEST_CLAMD_ENV ?? path.join(process.env.TMPDIR ?? os.tmpdir(), 'inkast-clamd', 'clamd.env');
  const env: Record<string, string> = {};
  if (fs.existsSync(file)) {
    for (const line of fs.readFileSync(file, 'utf8').split('\n')) {
      const m = /^([A-Z0-9_]+)=(.*)$/.exec(line.trim());
      if (m) env[m[1]] = m[2];
    }
  }
  const host = env.CLAMAV_HOST;
  const port = Number(env.CLAMAV_PORT);
  if (host && port) {
    try {
      await clamdPing({ host, port }, 3000);
      return { host, port, socket: env.CLAMAV_SOCKET || undefined, env: { CLAMAV_HOST: host, CLAMAV_PORT: String(port) } };
    } catch {
      // fall through
    }
  }
  if (process.env.INKAST_TEST_REQUIRE_REAL === '1') {
    throw new Error(`INKAST_TEST_REQUIRE_REAL=1 but no clamd answers (env file ${file}; run scripts/clamd-start.sh)`);
  }
  return undefined;
}

/**
 * The EICAR anti-malware test file (68 bytes): harmless, detected by every scanner by design.
 * Assembled at run time so that the source file itself is not flagged by a scanner.
 */
export function eicar(): Buffer {
  return Buffer.from(['X5O!P%@AP[4\\PZX54(P^)7CC)7}$', 'EICAR-STANDARD-ANTIVIRUS-TEST-FILE!', '$H+H*'].join(''), 'latin1');
}
