/**
 * Debian's Chromium driven by playwright-core (`npx playwright install` cannot run here). Each
 * launch gets a fresh temporary profile from Playwright; the flags keep a root, offline machine
 * from stalling on sandboxing and background network (TESTING.md, "Browser").
 */
import fs from 'node:fs';
import { chromium, type Browser } from 'playwright-core';

const EXECUTABLE = process.env.INKAST_TEST_CHROMIUM ?? '/usr/bin/chromium';

/** Why the browser journeys cannot run, or false; CI (INKAST_TEST_REQUIRE_REAL=1) fails instead. */
export function chromiumMissing(): string | false {
  if (fs.existsSync(EXECUTABLE)) return false;
  if (process.env.INKAST_TEST_REQUIRE_REAL === '1') throw new Error(`INKAST_TEST_REQUIRE_REAL=1 but ${EXECUTABLE} is missing`);
  return `no Chromium at ${EXECUTABLE}`;
}

export function launchChromium(): Promise<Browser> {
  return chromium.launch({
    executablePath: EXECUTABLE,
    args: [
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
  });
}
