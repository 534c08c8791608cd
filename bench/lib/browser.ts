/**
 * The browser side, in Debian's headless Chromium (e2e/chromium.ts):
 *  - the encoder alone in a Web Worker: lib/crypto/encoder bundled with esbuild, served with a
 *    blank page from a loopback server (a secure context, as the app's origin is);
 *  - the real filedrop page /d/<slug> sending a large file: throughput from its tus requests;
 *  - resume after a reload mid-upload: bytes PATCHed after the reload against the server's offset.
 */
import http from 'node:http';
import type net from 'node:net';
import path from 'node:path';
import { build } from 'esbuild';
import type { Browser, Page, Request } from 'playwright-core';
import { testKey } from '@/lib/crypto/testing';
import type { EncoderBenchResult } from '../browser/encoder-worker';
import { childrenOf, cmdline, cpuSeconds } from './proc';
import type { Stack, TestFile } from './stack';
import { sleep } from './util';

const root = path.resolve(import.meta.dirname, '..', '..');

/** CPU seconds of every Chromium process this process started (browser, renderers, GPU, network). */
export function chromiumCpuSeconds(): number {
  let total = 0;
  const walk = (pid: number) => {
    for (const c of childrenOf(pid)) {
      if (cmdline(c).includes('chromium')) total += cpuSeconds(c) ?? 0;
      walk(c);
    }
  };
  walk(process.pid);
  return total;
}

// ---- the encoder alone ----

async function workerBundle(): Promise<string> {
  const out = await build({
    entryPoints: [path.join(root, 'bench', 'browser', 'encoder-worker.ts')],
    bundle: true,
    format: 'iife',
    platform: 'browser',
    target: 'es2022',
    minify: true,
    write: false,
    tsconfig: path.join(root, 'tsconfig.json'),
    logLevel: 'silent',
  });
  return out.outputFiles[0].text;
}

const BLANK_PAGE = '<!doctype html><meta charset="utf-8"><title>encoder bench</title><input type="file" id="file">';

/** Runs the encoder over `file` in a Web Worker of a blank page; `rangeSize` as tus asks (50 MiB on the page). */
export async function encoderInWorker(browser: Browser, file: TestFile, rangeSize: number, rounds: number): Promise<EncoderBenchResult> {
  const script = await workerBundle();
  const server = http.createServer((req, res) => {
    if (req.url === '/worker.js') {
      res.writeHead(200, { 'content-type': 'text/javascript' });
      return res.end(script);
    }
    res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' });
    res.end(BLANK_PAGE);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as net.AddressInfo).port;
  const context = await browser.newContext();
  try {
    const page = await context.newPage();
    await page.goto(`http://127.0.0.1:${port}/`);
    await page.locator('#file').setInputFiles(file.path);
    const { publicKey } = await testKey('Bench mailbox');
    const reply = await page.evaluate(
      ({ publicKeys, rangeSize, rounds }) =>
        new Promise<{ ok: boolean; result?: EncoderBenchResult; message?: string }>((resolve) => {
          const picked = (document.getElementById('file') as HTMLInputElement).files![0];
          const worker = new Worker('/worker.js');
          worker.onmessage = (e) => resolve(e.data);
          worker.onerror = (e) => resolve({ ok: false, message: e.message });
          worker.postMessage({ file: picked, publicKeys, rangeSize, rounds });
        }),
      { publicKeys: [publicKey], rangeSize, rounds },
    );
    if (!reply.ok || !reply.result) throw new Error(`encoder worker failed: ${reply.message}`);
    return reply.result;
  } finally {
    await context.close();
    server.close();
  }
}

// ---- the filedrop page ----

const isTus = (req: Request) => new URL(req.url()).pathname.startsWith('/api/tus');

async function fillAndSend(page: Page, stack: Stack, file: TestFile, subject: string): Promise<void> {
  await page.goto(`${stack.app.url}/d/${stack.app.slug}`);
  await page.getByLabel('Din e-postadress').fill('avsandare@bench.example');
  await page.getByLabel('Ämne').fill(subject);
  await page.locator('#files').setInputFiles(file.path);
  await page.getByRole('button', { name: 'Kryptera och skicka' }).click();
}

async function waitForDelivered(page: Page, timeoutMs: number): Promise<void> {
  const state = page.locator('[data-testid=delivery-state][data-state=delivered], [data-testid=delivery-state][data-state=rejected]');
  await state.waitFor({ timeout: timeoutMs });
  const value = await state.getAttribute('data-state');
  if (value !== 'delivered') throw new Error(`the page shows ${value}: ${await state.innerText()}`);
}

export interface PageUpload {
  /** Ciphertext bytes (Upload-Length). */
  totalLength: number;
  /** From the tus creation request to the last PATCH answered. */
  seconds: number;
  patches: number;
  /** Until the page showed "delivered" (upload, hashing, hand-in, verify). */
  deliveredSeconds: number;
  chromiumCpuSeconds: number;
}

/** Sends `file` through the real filedrop page and times its tus requests. */
export async function pageUpload(browser: Browser, stack: Stack, file: TestFile, timeoutMs: number): Promise<PageUpload> {
  const context = await browser.newContext();
  try {
    const page = await context.newPage();
    let created: number | undefined;
    let lastPatch = 0;
    let patches = 0;
    let totalLength = 0;
    page.on('request', (req) => {
      if (!isTus(req)) return;
      if (req.method() === 'POST') {
        created ??= performance.now();
        totalLength = Number(req.headers()['upload-length']);
      }
    });
    page.on('requestfinished', (req) => {
      if (isTus(req) && req.method() === 'PATCH') {
        patches++;
        lastPatch = performance.now();
      }
    });
    const cpu0 = chromiumCpuSeconds();
    const t0 = performance.now();
    await fillAndSend(page, stack, file, 'Benchmark (page)');
    await waitForDelivered(page, timeoutMs);
    const deliveredSeconds = (performance.now() - t0) / 1000;
    if (created === undefined || !patches) throw new Error('no tus upload seen');
    return {
      totalLength,
      seconds: (lastPatch - created) / 1000,
      patches,
      deliveredSeconds,
      chromiumCpuSeconds: chromiumCpuSeconds() - cpu0,
    };
  } finally {
    await context.close();
  }
}

// ---- resume after a reload ----

export interface ResumeCost {
  /** Percent of the upload (the page's progress bar) at which the page was reloaded. */
  reloadAt: number;
  totalLength: number;
  reloadedAtPercent: number;
  /** The highest Upload-Offset a PATCH answer confirmed before the reload. */
  ackedBefore: number;
  /** The server's offset after the reload (tus HEAD, once the aborted PATCH's lock was gone). */
  serverOffset: number;
  /** Confirmed bytes the server no longer had when the page resumed (ackedBefore − that offset, when positive). */
  lostAcked: number;
  /** Upload-Offset of the first PATCH after the reload. */
  firstOffsetAfter: number;
  /** Body bytes of every PATCH after the reload. */
  bytesSentAfter: number;
  /** bytesSentAfter − (totalLength − the offset the page resumed at): bytes sent after the reload that the server already had. */
  resentAfterReload: number;
  /** Bytes the browser put on the wire (counting proxy) from "send" to the last PATCH, minus the object's length: every byte sent twice, plus request headers. */
  wireOverhead: number;
  /** Requests made in that time (each ~0.5–1 KB of headers, part of wireOverhead). */
  requests: number;
  patchesAfter: number;
  /** Reload → first PATCH after it (page load, re-pick, HEAD, re-encrypting the chunks around the offset). */
  secondsToFirstPatch: number;
}

async function serverOffset(uploadUrl: string, token: string): Promise<number> {
  for (let attempt = 0; attempt < 100; attempt++) {
    const res = await fetch(uploadUrl, { method: 'HEAD', headers: { 'Tus-Resumable': '1.0.0', 'Inkast-Sender-Token': token } });
    if (res.status === 200) return Number(res.headers.get('upload-offset'));
    if (res.status !== 423) throw new Error(`HEAD ${uploadUrl} answered ${res.status}`);
    await sleep(200);
  }
  throw new Error(`${uploadUrl} stayed locked`);
}

/**
 * Starts sending `file` through the page at `baseUrl` (a counting proxy in front of the app) on a
 * throttled link, reloads at `reloadAt` percent, re-picks the file, and counts what is sent twice.
 */
export async function resumeCost(
  browser: Browser,
  baseUrl: string,
  slug: string,
  file: TestFile,
  opts: { uplinkBytesPerSecond: number; reloadAt: number; wireBytes: () => number },
): Promise<ResumeCost> {
  const context = await browser.newContext();
  try {
    const page = await context.newPage();
    page.on('dialog', (dialog) => void dialog.accept()); // "leave the page?" while uploading
    let upload: { url: string; token: string; length: number } | undefined;
    let ackedBefore = 0;
    let reloaded = false;
    let requests = 0;
    let lastPatchDone = 0;
    page.on('request', () => requests++);
    page.on('response', (res) => {
      const req = res.request();
      if (!isTus(req)) return;
      if (req.method() === 'POST' && res.status() === 201) {
        upload = { url: new URL(res.headers().location, res.url()).href, token: req.headers()['inkast-sender-token'], length: Number(req.headers()['upload-length']) };
      }
      if (req.method() === 'PATCH' && res.status() === 204) {
        if (!reloaded) ackedBefore = Math.max(ackedBefore, Number(res.headers()['upload-offset']));
        lastPatchDone = opts.wireBytes();
      }
    });
    const cdp = await context.newCDPSession(page);
    await cdp.send('Network.enable');
    const throttle = (bytesPerSecond: number) =>
      cdp.send('Network.emulateNetworkConditions', { offline: false, latency: 0, downloadThroughput: -1, uploadThroughput: bytesPerSecond });
    await throttle(opts.uplinkBytesPerSecond);

    await page.goto(`${baseUrl}/d/${slug}`);
    await page.getByLabel('Din e-postadress').fill('avsandare@bench.example');
    await page.getByLabel('Ämne').fill('Benchmark (resume)');
    await page.locator('#files').setInputFiles(file.path);
    requests = 0;
    const wire0 = opts.wireBytes();
    await page.getByRole('button', { name: 'Kryptera och skicka' }).click();
    await page.waitForFunction(
      (at) => ((document.querySelector('progress.progress-total') as HTMLProgressElement | null)?.value ?? 0) >= at,
      opts.reloadAt,
      { timeout: 600_000, polling: 50 },
    );
    const reloadedAtPercent = await page.evaluate(() => (document.querySelector('progress.progress-total') as HTMLProgressElement).value);
    reloaded = true;
    const reloadedAt = performance.now();
    await page.reload();
    if (!upload) throw new Error('the upload was not created before the reload');
    const offset = await serverOffset(upload.url, upload.token);
    await throttle(-1);

    const after: Request[] = [];
    page.on('request', (req) => {
      if (isTus(req) && req.method() === 'PATCH') after.push(req);
    });
    await page.getByRole('heading', { name: 'Du har en leverans som inte är klar' }).waitFor();
    await page.locator('#repick').setInputFiles(file.path);
    await waitForDelivered(page, 600_000);
    if (!after.length) throw new Error('nothing was sent after the reload');
    const firstPatchAt = after[0].timing();

    let bytesSentAfter = 0;
    for (const req of after) {
      const headers = await req.allHeaders();
      const sent = Number(headers['content-length']);
      if (Number.isFinite(sent)) bytesSentAfter += sent;
      else {
        // No Content-Length seen: what the server accepted (new offset − old) is what was sent.
        const res = await req.response();
        bytesSentAfter += Number(res?.headers()['upload-offset'] ?? 0) - Number(headers['upload-offset']);
      }
    }
    const firstOffsetAfter = Number((await after[0].allHeaders())['upload-offset']);
    // A HEAD soon after the abort may see the offset before the S3 store finished writing what
    // arrived (the lock is already free); the page's first PATCH, accepted, is at the real offset.
    const resumedAt = Math.max(offset, firstOffsetAfter);
    return {
      reloadAt: opts.reloadAt,
      totalLength: upload.length,
      reloadedAtPercent,
      ackedBefore,
      serverOffset: offset,
      lostAcked: Math.max(0, ackedBefore - resumedAt),
      firstOffsetAfter,
      bytesSentAfter,
      resentAfterReload: bytesSentAfter - (upload.length - resumedAt),
      wireOverhead: lastPatchDone - wire0 - upload.length,
      requests,
      patchesAfter: after.length,
      secondsToFirstPatch: round3((firstPatchAt.startTime - (performance.timeOrigin + reloadedAt)) / 1000),
    };
  } finally {
    await context.close();
  }
}

const round3 = (n: number) => Math.round(n * 1000) / 1000;
