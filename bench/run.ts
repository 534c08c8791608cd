/**
 * `npm run bench`: Inkast against the real stack on this machine — the built app in production
 * mode, Ceph RGW and the local object directory — compared with the raw store, in one run.
 * Prints a table on stdout (progress on stderr) and writes every sample to
 * bench/results/<timestamp>.json (and the table as .md beside it). See BENCHMARKS.md.
 *
 *   npm run bench                                  the full spec (≈ 30 min on 2 shared cores)
 *   npm run bench -- --size 64MiB --rounds 1 --stores local --skip-5gb --skip-browser   a quick look
 *
 * The app must be built first, into the dist dir INKAST_NEXT_DIST_DIR names (default .next):
 *   export INKAST_NEXT_DIST_DIR=.next-bench; npx next build; git checkout tsconfig.json
 */
import { execFileSync, spawn } from 'node:child_process';
import crypto from 'node:crypto';
import { once } from 'node:events';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { parseArgs } from 'node:util';
import type { Browser } from 'playwright-core';
import { launchChromium } from '../e2e/chromium';
import { startMailCatcher, type MailCatcher } from '@/lib/testing/sign-in';
import { postgresAdminUrl, s3Settings, type S3Settings } from '@/lib/testing/targets';
import { encoderInWorker, pageUpload, resumeCost, type ResumeCost } from './lib/browser';
import { startCountingProxy } from './lib/proxy';
import { appServerPids, countCpu, loadAverage, memoryOf, watchMemory, type CpuUse, type MemoryPhase } from './lib/proc';
import { renderMarkdown, renderTable, type Row } from './lib/report';
import {
  bareDelete,
  bareVerify,
  destroyStack,
  download,
  killRunningApps,
  fileIdsOf,
  makeTestFile,
  privateKeysOf,
  rawDelete,
  rawRead,
  rawWrite,
  relayRead,
  relayWrite,
  restartStack,
  sendBare,
  sendFile,
  startBareTus,
  startRelay,
  startStack,
  submitAndVerify,
  type DbKind,
  type Sent,
  type Stack,
  type StoreKind,
  type TestFile,
  type ToolServer,
  verifyInProcess,
} from './lib/stack';
import type { BareThreads } from './tools/bare-verify';
import { FIRST_CHUNK_BYTES } from '@/lib/uploads/chunks';
import { formatSize, GiB, mbps, median, MiB, parseSize, round, say } from './lib/util';

const root = path.resolve(import.meta.dirname, '..');

// ---- options ----

const { values: flags } = parseArgs({
  options: {
    size: { type: 'string', default: '1GiB' },
    rounds: { type: 'string', default: '3' },
    stores: { type: 'string', default: 'ceph,local' },
    db: { type: 'string' },
    'chunk-size': { type: 'string', default: 'adaptive' },
    'raw-part-size': { type: 'string', default: '8MiB' },
    'raw-queue': { type: 'string', default: '4' },
    'big-size': { type: 'string', default: '5GB' },
    'big-store': { type: 'string', default: 'local' },
    'skip-5gb': { type: 'boolean', default: false },
    parallel: { type: 'string', default: '10' },
    'parallel-size': { type: 'string', default: '256MiB' },
    'parallel-stores': { type: 'string' },
    'skip-parallel': { type: 'boolean', default: false },
    'browser-size': { type: 'string', default: '1GiB' },
    'browser-store': { type: 'string' },
    'browser-rounds': { type: 'string', default: '2' },
    'resume-size': { type: 'string', default: '128MiB' },
    'resume-at': { type: 'string', default: '25,45,65' },
    'skip-browser': { type: 'boolean', default: false },
    'skip-transfer': { type: 'boolean', default: false },
    'skip-baseline': { type: 'boolean', default: false },
    'skip-bare': { type: 'boolean', default: false },
    'skip-relay': { type: 'boolean', default: false },
    profile: { type: 'string' },
    'tmp-dir': { type: 'string', default: os.tmpdir() },
    out: { type: 'string', default: path.join(root, 'bench', 'results') },
    note: { type: 'string', default: '' },
    keep: { type: 'boolean', default: false },
    help: { type: 'boolean', default: false },
  },
  strict: true,
});

if (flags.help) {
  process.stdout.write(fs.readFileSync(new URL(import.meta.url), 'utf8').split('*/')[0] + '*/\n');
  process.stdout.write(`Flags (defaults = the full spec):\n${JSON.stringify(flags, null, 2)}\n`);
  process.exit(0);
}

const list = (v: string | undefined) => (v ?? '').split(',').map((s) => s.trim()).filter(Boolean);
const storeList = (v: string | undefined): StoreKind[] =>
  list(v).map((s) => {
    if (s !== 'ceph' && s !== 'local') throw new Error(`unknown store "${s}": ceph or local`);
    return s;
  });

const opts = {
  size: parseSize(flags.size!),
  rounds: Number(flags.rounds),
  stores: storeList(flags.stores),
  // 'adaptive': what the page and lib/uploads/client do (lib/uploads/chunks); else a fixed size.
  chunkSize: flags['chunk-size'] === 'adaptive' ? undefined : parseSize(flags['chunk-size']!),
  rawPartSize: parseSize(flags['raw-part-size']!),
  rawQueue: Number(flags['raw-queue']),
  bigSize: parseSize(flags['big-size']!),
  bigStore: storeList(flags['big-store'])[0],
  skipBig: flags['skip-5gb']!,
  parallel: Number(flags.parallel),
  parallelSize: parseSize(flags['parallel-size']!),
  parallelStores: flags['parallel-stores'] ? storeList(flags['parallel-stores']) : storeList(flags.stores),
  skipParallel: flags['skip-parallel']!,
  browserSize: parseSize(flags['browser-size']!),
  browserStore: storeList(flags['browser-store'] ?? flags.stores)[0],
  browserRounds: Number(flags['browser-rounds']),
  resumeSize: parseSize(flags['resume-size']!),
  resumeAt: list(flags['resume-at']).map(Number),
  skipBrowser: flags['skip-browser']!,
  skipTransfer: flags['skip-transfer']!,
  skipBaseline: flags['skip-baseline']!,
  skipBare: flags['skip-bare']!,
  skipRelay: flags['skip-relay']!,
  profileDir: flags.profile ? path.resolve(flags.profile) : undefined,
  note: flags.note!,
};

// ---- results ----

interface OpSample {
  round: number;
  bytes: number;
  seconds: number;
  mbps: number;
  cpu: CpuUse;
  /** The app server's peak RSS during the operation (bytes). */
  serverPeakRss?: number;
  /** With --profile: the CPU profiles of this operation, the app server's and the client process's. */
  profile?: { server?: string; client?: string };
}

interface StoreResults {
  store: StoreKind;
  size: number;
  upload: { full: OpSample[]; raw: OpSample[] };
  verify: {
    job: (OpSample & { pollSeconds: number; exact: boolean })[];
    inProcess: OpSample[];
    rawGetAfter: OpSample[];
    /** The bare verifier (bench/tools/bare-verify.ts) in one thread and with a worker, in the download rounds. */
    bare: { oneThread: OpSample[]; worker: OpSample[] };
  };
  download: { decrypting: OpSample[]; rawGet: OpSample[] };
  /** Upload through the app vs through a bare @tus/server process (same client, store, file). */
  bare?: { app: OpSample[]; bare: OpSample[] };
  /** The same bytes through a bare relay process (no tus), alternating with the above; `writeEncrypted` with the sender's least encryption. */
  relay?: { write: OpSample[]; writeEncrypted: OpSample[]; read: OpSample[] };
}

interface MemoryRun {
  store: StoreKind;
  what: string;
  idleRss: number;
  phases: (MemoryPhase & { seconds: number; bytes: number; mbps: number; cpu: CpuUse })[];
}

const results: {
  startedAt: string;
  finishedAt?: string;
  machine: Record<string, unknown>;
  options: typeof opts & { db: DbKind };
  load: { at: string; load1: number }[];
  baseline: { config: string; rss: number; anon: number }[];
  /** bench/tools/pglite-alone.ts on a restart: RSS before and after opening the embedded database. */
  pgliteAlone?: { before: number; open: number };
  stores: StoreResults[];
  memory: MemoryRun[];
  browser?: Record<string, unknown>;
  floor?: Record<string, number>;
  errors: string[];
} = {
  startedAt: new Date().toISOString(),
  machine: {},
  options: { ...opts, db: 'pglite' },
  load: [],
  baseline: [],
  stores: [],
  memory: [],
  errors: [],
};

function machineInfo(): Record<string, unknown> {
  const sh = (cmd: string, args: string[]) => {
    try {
      return execFileSync(cmd, args, { encoding: 'utf8', timeout: 5000, stdio: ['ignore', 'pipe', 'ignore'] }).trim();
    } catch {
      return undefined;
    }
  };
  return {
    host: os.hostname(),
    cpu: os.cpus()[0]?.model,
    cores: os.cpus().length,
    memoryGiB: round(os.totalmem() / 2 ** 30, 1),
    kernel: os.release(),
    os: sh('sh', ['-c', '. /etc/os-release && echo "$PRETTY_NAME"']),
    node: process.version,
    next: JSON.parse(fs.readFileSync(path.join(root, 'node_modules', 'next', 'package.json'), 'utf8')).version,
    ceph: sh('radosgw', ['--version'])?.split('\n')[0],
    chromium: sh('/usr/bin/chromium', ['--version']),
    distDir: process.env.INKAST_NEXT_DIST_DIR || '.next',
    disk: sh('df', ['-h', '--output=source,size,avail', os.tmpdir()])?.split('\n')[1],
  };
}

// ---- measuring one operation ----

async function measure<T extends { seconds: number }>(
  pids: { server?: number; client: number },
  roundNo: number,
  bytes: number,
  fn: () => Promise<T>,
): Promise<{ sample: OpSample; value: T }> {
  const serverPid = pids.server;
  // Only app servers and client processes run the profiling hook (not the bare tus server).
  const profiled = opts.profileDir ? { server: serverPid && appServerPids().includes(serverPid) ? serverPid : undefined, client: pids.client } : undefined;
  const profile = profiled && { server: await profileMark(profiled.server, 'server'), client: await profileMark(profiled.client, 'client') };
  const cpu = countCpu(pids);
  const mem = serverPid ? watchMemory(serverPid, 'op') : undefined;
  const value = await fn();
  const phase = mem?.end();
  const used = roundCpu(cpu.end());
  if (profiled) for (const [role, pid] of Object.entries(profiled)) await profileMark(pid, role);
  return {
    value,
    sample: { round: roundNo, bytes, seconds: round3(value.seconds), mbps: round(mbps(bytes, value.seconds)), cpu: used, serverPeakRss: phase?.peakRss, profile },
  };
}

const round3 = (n: number) => round(n, 3);

const pidsOf = (stack: Stack) => ({ server: stack.pid, client: stack.client.pid });

const profileCounts = new Map<number, number>();

/**
 * With --profile, bench/tools/cpu-profile-hook.cjs runs in the app servers and the client process:
 * each SIGUSR2 writes the profile since the last one. Returns the file the next mark will write
 * (the operation's).
 */
async function profileMark(pid: number | undefined, role: string): Promise<string | undefined> {
  if (!opts.profileDir || pid === undefined) return undefined;
  process.kill(pid, 'SIGUSR2');
  const n = (profileCounts.get(pid) ?? 0) + 1;
  profileCounts.set(pid, n);
  await new Promise((r) => setTimeout(r, 300)); // the hook writes asynchronously
  return path.join(opts.profileDir, `${role}-${pid}-${n + 1}.cpuprofile`);
}
function roundCpu(c: CpuUse): CpuUse {
  return { bench: round(c.bench, 2), client: round(c.client, 2), server: round(c.server, 2), rgw: round(c.rgw, 2), osd: round(c.osd, 2), others: round(c.others, 2), wall: round(c.wall, 2) };
}

// ---- sections ----

/**
 * What the cryptography alone costs on this machine, in CPU seconds per GiB, one thread, data in
 * memory: the floor under every encrypting or decrypting path, whatever the code around it does.
 * And what one loopback TCP hop costs: the floor of having an app between sender and store. Each
 * is the best of three; the run keeps the lowest of its measurements (before and after each store).
 */
async function floors(): Promise<Record<string, number>> {
  const chunk = crypto.randomBytes(4 * MiB);
  const key = crypto.randomBytes(32);
  const total = 256 * MiB;
  // A floor is the least the work can cost: the best of three, so that a neighbour's burst on
  // this shared machine does not raise it.
  const time = async (fn: () => Promise<void> | void) => {
    let best = Infinity;
    for (let i = 0; i < 3; i++) {
      const c0 = process.cpuUsage();
      await fn();
      const c = process.cpuUsage(c0);
      best = Math.min(best, ((c.user + c.system) / 1e6) * (GiB / total));
    }
    return round(best, 2);
  };
  const floor = {
    // lib/crypto/decoder: node:crypto aes-256-gcm over 4 MiB chunks, tag checked
    gcmDecryptNode: await time(() => {
      const iv = crypto.randomBytes(12);
      const e = crypto.createCipheriv('aes-256-gcm', key, iv);
      const ct = e.update(chunk);
      e.final();
      const tag = e.getAuthTag();
      for (let n = 0; n < total; n += chunk.length) {
        const d = crypto.createDecipheriv('aes-256-gcm', key, iv);
        d.setAuthTag(tag);
        d.update(ct);
        d.final();
      }
    }),
    // lib/crypto/encoder in Node: WebCrypto AES-GCM over 4 MiB chunks
    gcmEncryptWebCrypto: await time(async () => {
      const k = await crypto.subtle.importKey('raw', key, 'AES-GCM', false, ['encrypt']);
      for (let n = 0; n < total; n += chunk.length) await crypto.subtle.encrypt({ name: 'AES-GCM', iv: crypto.randomBytes(12) }, k, chunk);
    }),
    // the verify pass hashes every plaintext byte
    sha256: await time(() => {
      const h = crypto.createHash('sha256');
      for (let n = 0; n < total; n += chunk.length) h.update(chunk);
      h.digest();
    }),
    // one copy of every byte (Buffer.from), for scale
    memcpy: await time(() => {
      for (let n = 0; n < total; n += chunk.length) Buffer.from(chunk);
    }),
    // one hop over loopback TCP, sender and receiver together: what putting the app between
    // sender and store costs whatever the app does
    loopback: await loopbackHop(chunk, total),
  };
  say(`floors, CPU s/GiB: ${JSON.stringify(floor)}`);
  return floor;
}

/** Each floor's lowest measurement of the run. */
function lowest(a: Record<string, number>, b: Record<string, number>): Record<string, number> {
  return Object.fromEntries(Object.entries(a).map(([k, v]) => [k, Math.min(v, b[k] ?? v)]));
}

/** CPU s/GiB of sending `total` bytes from this process to a draining child process over loopback TCP, both ends, best of three. */
async function loopbackHop(chunk: Buffer, total: number): Promise<number> {
  // Prints its port, then, when the sender is done, the CPU microseconds the connection cost it.
  const sink = `require('node:net').createServer((s) => {
      const c0 = process.cpuUsage();
      s.on('data', () => {}).on('end', () => { const c = process.cpuUsage(c0); process.stdout.write(c.user + c.system + '\\n', () => process.exit(0)); });
    }).listen(0, '127.0.0.1', function () { process.stdout.write(this.address().port + '\\n'); });`;
  let best = Infinity;
  for (let i = 0; i < 3; i++) {
    const child = spawn(process.execPath, ['-e', sink], { stdio: ['ignore', 'pipe', 'inherit'] });
    const lines = createInterface({ input: child.stdout! })[Symbol.asyncIterator]();
    const socket = net.connect(Number((await lines.next()).value), '127.0.0.1');
    await once(socket, 'connect');
    const c0 = process.cpuUsage();
    for (let n = 0; n < total; n += chunk.length) if (!socket.write(chunk)) await once(socket, 'drain');
    socket.end();
    const receiver = Number((await lines.next()).value);
    const c = process.cpuUsage(c0);
    await once(child, 'exit');
    best = Math.min(best, ((c.user + c.system + receiver) / 1e6) * (GiB / total));
  }
  return round(best, 2);
}

/** Idle RSS of the app server: PGlite on first start and after a restart, PostgreSQL (no uploads yet). */
async function baseline(smtp: MailCatcher, pgAdmin: string | undefined): Promise<void> {
  const configs: { name: string; db: DbKind; restart: boolean }[] = [
    { name: 'PGlite, first start', db: 'pglite', restart: false },
    { name: 'PGlite, restarted', db: 'pglite', restart: true },
  ];
  if (pgAdmin) configs.push({ name: 'PostgreSQL', db: 'postgres', restart: false });
  for (const c of configs) {
    const stack = await startStack({ store: 'local', db: c.db, smtp, postgresAdminUrl: pgAdmin });
    try {
      if (c.restart) await restartStack(stack, smtp);
      await new Promise((r) => setTimeout(r, 3000));
      const m = memoryOf(stack.pid)!;
      results.baseline.push({ config: c.name, rss: m.rss, anon: m.anon });
      say(`idle RSS, ${c.name}: ${(m.rss / MiB).toFixed(0)} MiB`);
    } finally {
      await destroyStack(stack, { postgresAdminUrl: pgAdmin });
    }
  }
  results.pgliteAlone = await pgliteAlone();
  say(`PGlite alone: ${((results.pgliteAlone.open - results.pgliteAlone.before) / MiB).toFixed(0)} MiB`);
}

/** What the embedded database itself holds: lib/db's PGlite in a bare Node process, created, then measured on a restart. */
async function pgliteAlone(): Promise<{ before: number; open: number }> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'inkast-pglite-alone-'));
  const run = () =>
    execFileSync(process.execPath, ['--expose-gc', '--import', 'tsx', path.join(root, 'bench', 'tools', 'pglite-alone.ts'), path.join(dir, 'db')], {
      cwd: root,
      encoding: 'utf8',
    });
  try {
    run();
    return JSON.parse(run()) as { before: number; open: number };
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

const WARM_UP_SIZE = 64 * MiB;

/** Each round's steps in another order: every path runs first, middle and last in turn. */
function inTurn<T>(steps: T[], round: number): T[] {
  return steps.map((_, k) => steps[(k + round) % steps.length]);
}

/**
 * Every path once with a small file, unmeasured: a server runs warm, so the rounds should not
 * pay for the app's first requests (Next loads a route's modules on its first request, V8
 * compiles the hot paths) nor the client's and the relay's.
 */
async function warmUp(stack: Stack, file: TestFile, relay: ToolServer | undefined): Promise<void> {
  const s = await sendFile(stack, file, opts.chunkSize);
  await submitAndVerify(stack, s);
  const [fileId] = await fileIdsOf(stack, s.delivery.deliveryId);
  await download(stack, fileId);
  await rawRead(stack, s.uploadId);
  await rawWrite(stack, file, 'bench-warm', { partSize: opts.rawPartSize, queueSize: opts.rawQueue });
  await rawDelete(stack, 'bench-warm');
  await bareVerify(stack, s.uploadId, 1);
  await bareVerify(stack, s.uploadId, 2);
  if (relay) {
    for (const encrypt of [false, true]) {
      await relayWrite(stack, relay, file, 'bench-warm', encrypt);
      await rawDelete(stack, 'bench-warm');
    }
    await relayRead(stack, relay, s.uploadId);
  }
  await rawDelete(stack, s.uploadId);
  say(`${stack.store}: every path warmed with ${formatSize(file.size)}`);
}

/**
 * Upload (full path vs lib-storage vs the bare relay), verify, download (decrypting vs raw GET
 * vs the relay), alternating, `rounds` times, after a warm-up.
 */
async function transfer(stack: Stack, file: TestFile, warm: TestFile): Promise<{ results: StoreResults; sent: Sent[] }> {
  const r: StoreResults = {
    store: stack.store,
    size: file.size,
    upload: { full: [], raw: [] },
    verify: { job: [], inProcess: [], rawGetAfter: [], bare: { oneThread: [], worker: [] } },
    download: { decrypting: [], rawGet: [] },
  };
  const sent: Sent[] = [];
  const relay = opts.skipRelay ? undefined : await startRelay(stack, { partSize: opts.rawPartSize, queueSize: opts.rawQueue });
  const relayed: StoreResults['relay'] = (r.relay = relay && { write: [], writeEncrypted: [], read: [] });
  const viaRelay = relay && { server: relay.pid, client: stack.client.pid };
  try {
    await warmUp(stack, warm, relay);
    for (let i = 0; i < opts.rounds; i++) {
      const full = async () => {
        const m = await measure(pidsOf(stack), i, file.size, () => sendFile(stack, file, opts.chunkSize));
        r.upload.full.push(m.sample);
        sent.push(m.value);
        say(`${stack.store} round ${i + 1}: upload, full path  ${m.sample.mbps} MB/s`);
      };
      const raw = async () => {
        const key = `bench-raw-${i}`;
        const m = await measure(pidsOf(stack), i, file.size, () => rawWrite(stack, file, key, { partSize: opts.rawPartSize, queueSize: opts.rawQueue }));
        r.upload.raw.push(m.sample);
        await rawDelete(stack, key);
        say(`${stack.store} round ${i + 1}: upload, raw write  ${m.sample.mbps} MB/s`);
      };
      const relayUp = (encrypt: boolean) => async () => {
        const key = `bench-relay-${i}`;
        const m = await measure(viaRelay!, i, file.size, () => relayWrite(stack, relay!, file, key, encrypt));
        relayed![encrypt ? 'writeEncrypted' : 'write'].push(m.sample);
        await rawDelete(stack, key);
        say(`${stack.store} round ${i + 1}: upload, bare relay${encrypt ? ', encrypting sender' : ''}  ${m.sample.mbps} MB/s`);
      };
      for (const step of inTurn(relay ? [full, raw, relayUp(false), relayUp(true)] : [full, raw], i)) await step();

      const s = sent[i];
      const v = await measure(pidsOf(stack), i, s.objectSize, () =>
        submitAndVerify(stack, s).then((x) => ({ ...x, seconds: x.jobSeconds ?? x.pollSeconds })),
      );
      r.verify.job.push({ ...v.sample, pollSeconds: round3(v.value.pollSeconds), exact: v.value.jobSeconds !== undefined });
      say(`${stack.store} round ${i + 1}: verify job  ${v.sample.mbps} MB/s${v.value.jobSeconds === undefined ? ' (from the status poll)' : ''}`);

      const [fileId] = await fileIdsOf(stack, s.delivery.deliveryId);
      const dl = async () => {
        const m = await measure(pidsOf(stack), i, file.size, () => download(stack, fileId));
        if (m.value.bytes !== file.size) throw new Error(`download gave ${m.value.bytes} of ${file.size} bytes`);
        r.download.decrypting.push(m.sample);
        say(`${stack.store} round ${i + 1}: download, decrypting  ${m.sample.mbps} MB/s`);
      };
      const get = async () => {
        const m = await measure(pidsOf(stack), i, s.objectSize, () => rawRead(stack, s.uploadId));
        if (m.value.bytes !== s.objectSize) throw new Error(`raw GET gave ${m.value.bytes} of ${s.objectSize} bytes`);
        r.download.rawGet.push(m.sample);
        say(`${stack.store} round ${i + 1}: download, raw GET  ${m.sample.mbps} MB/s`);
      };
      const relayDown = async () => {
        const m = await measure(viaRelay!, i, s.objectSize, () => relayRead(stack, relay!, s.uploadId));
        if (m.value.bytes !== s.objectSize) throw new Error(`relay GET gave ${m.value.bytes} of ${s.objectSize} bytes`);
        relayed!.read.push(m.sample);
        say(`${stack.store} round ${i + 1}: download, bare relay  ${m.sample.mbps} MB/s`);
      };
      const bare = (threads: BareThreads) => async () => {
        const m = await measure(pidsOf(stack), i, s.objectSize, () => bareVerify(stack, s.uploadId, threads));
        if (m.value.bytes !== s.objectSize) throw new Error(`the bare verifier read ${m.value.bytes} of ${s.objectSize} bytes`);
        r.verify.bare[threads === 1 ? 'oneThread' : 'worker'].push(m.sample);
        say(`${stack.store} round ${i + 1}: bare verifier, ${threads === 1 ? 'one thread' : 'with a worker'}  ${m.sample.mbps} MB/s`);
      };
      const reads = [dl, get, bare(1), bare(2)];
      for (const step of inTurn(relay ? [...reads, relayDown] : reads, i)) await step();
    }
  } finally {
    await relay?.stop();
  }
  return { results: r, sent };
}

/** The same client and file against the app and against a bare @tus/server process on the same store, alternating. */
async function bareTusSection(stack: Stack, file: TestFile, r: StoreResults): Promise<void> {
  const bare = await startBareTus(stack);
  r.bare = { app: [], bare: [] };
  try {
    for (let i = 0; i < opts.rounds; i++) {
      const viaApp = async () => {
        const m = await measure(pidsOf(stack), i, file.size, () => sendFile(stack, file, opts.chunkSize));
        r.bare!.app.push(m.sample);
        await rawDelete(stack, m.value.uploadId);
        say(`${stack.store} round ${i + 1}: upload via the app  ${m.sample.mbps} MB/s`);
      };
      const viaBare = async () => {
        const m = await measure({ server: bare.pid, client: stack.client.pid }, i, file.size, () => sendBare(stack, bare, file, opts.chunkSize));
        r.bare!.bare.push(m.sample);
        await bareDelete(stack, m.value.uploadId);
        say(`${stack.store} round ${i + 1}: upload via bare tus  ${m.sample.mbps} MB/s`);
      };
      for (const step of i % 2 === 0 ? [viaBare, viaApp] : [viaApp, viaBare]) await step();
    }
  } finally {
    await bare.stop();
  }
}

/** With the app stopped: the verify pass in this process (same decoder, same store) against raw GETs, alternating. */
async function verifyWithoutApp(stack: Stack, r: StoreResults, sent: Sent[]): Promise<void> {
  const keys = await privateKeysOf(stack);
  for (const [i, s] of sent.entries()) {
    const inProcess = async () => {
      const m = await measure({ client: stack.client.pid }, i, s.objectSize, () => verifyInProcess(stack, s.uploadId, s.objectSize, keys));
      if (m.value.sha256 !== s.file.sha256) throw new Error('in-process verification: SHA-256 mismatch');
      r.verify.inProcess.push(m.sample);
      say(`${stack.store} round ${i + 1}: verify in-process  ${m.sample.mbps} MB/s`);
    };
    const get = async () => {
      const m = await measure({ client: stack.client.pid }, i, s.objectSize, () => rawRead(stack, s.uploadId));
      r.verify.rawGetAfter.push(m.sample);
      say(`${stack.store} round ${i + 1}: raw GET (app stopped)  ${m.sample.mbps} MB/s`);
    };
    for (const step of i % 2 === 0 ? [inProcess, get] : [get, inProcess]) await step();
  }
}

async function phase<T>(
  stack: Stack,
  label: string,
  bytes: number,
  run: MemoryRun,
  fn: () => Promise<T>,
): Promise<T> {
  const cpu = countCpu(pidsOf(stack));
  const mem = watchMemory(stack.pid, label);
  const t0 = performance.now();
  const value = await fn();
  const seconds = (performance.now() - t0) / 1000;
  const p = mem.end();
  run.phases.push({ ...p, seconds: round3(seconds), bytes, mbps: round(mbps(bytes, seconds)), cpu: roundCpu(cpu.end()) });
  say(`${stack.store} ${run.what}: ${label}  peak RSS ${(p.peakRss / MiB).toFixed(0)} MiB, ${round(mbps(bytes, seconds))} MB/s`);
  return value;
}

/** One big file: upload, verify, download on a freshly restarted app; the server's peak RSS per phase. */
async function bigFile(stack: Stack, smtp: MailCatcher, file: TestFile): Promise<void> {
  await restartStack(stack, smtp);
  await new Promise((r) => setTimeout(r, 2000));
  const run: MemoryRun = { store: stack.store, what: `one ${formatSize(file.size)} file`, idleRss: memoryOf(stack.pid)!.rss, phases: [] };
  results.memory.push(run);
  const s = await phase(stack, 'upload', file.size, run, () => sendFile(stack, file, opts.chunkSize));
  await phase(stack, 'verify', s.objectSize, run, () => submitAndVerify(stack, s));
  const [fileId] = await fileIdsOf(stack, s.delivery.deliveryId);
  await phase(stack, 'download', file.size, run, async () => {
    const d = await download(stack, fileId);
    if (d.bytes !== file.size) throw new Error(`download gave ${d.bytes} of ${file.size} bytes`);
  });
  await rawDelete(stack, s.uploadId);
}

/** `n` senders at once, each one file; then their verifications and `n` handlers downloading at once. */
async function parallelUploads(stack: Stack, smtp: MailCatcher, file: TestFile, n: number): Promise<void> {
  await restartStack(stack, smtp);
  await new Promise((r) => setTimeout(r, 2000));
  const run: MemoryRun = { store: stack.store, what: `${n} parallel ${formatSize(file.size)} uploads`, idleRss: memoryOf(stack.pid)!.rss, phases: [] };
  results.memory.push(run);
  const sent = await phase(stack, `${n} uploads at once`, n * file.size, run, () =>
    Promise.all(Array.from({ length: n }, () => sendFile(stack, file, opts.chunkSize))),
  );
  await phase(stack, `${n} verifications`, sent.reduce((a, s) => a + s.objectSize, 0), run, () =>
    Promise.all(sent.map((s) => submitAndVerify(stack, s))),
  );
  const ids = await Promise.all(sent.map(async (s) => (await fileIdsOf(stack, s.delivery.deliveryId))[0]));
  await phase(stack, `${n} downloads at once`, n * file.size, run, () => Promise.all(ids.map((id) => download(stack, id))));
  for (const s of sent) await rawDelete(stack, s.uploadId);
}

async function browserSection(stack: Stack, smtp: MailCatcher, browserFile: TestFile, resumeFile: TestFile, nodeUpload: number | undefined): Promise<void> {
  let browser: Browser | undefined;
  try {
    browser = await launchChromium();
    const b: Record<string, unknown> = { store: stack.store, size: browserFile.size, chromium: browser.version() };
    results.browser = b;
    say(`browser: encoder alone in a Web Worker over ${formatSize(browserFile.size)}`);
    const enc = await encoderInWorker(browser, browserFile, opts.chunkSize ?? FIRST_CHUNK_BYTES, opts.browserRounds);
    b.encoder = {
      ...enc,
      readMBps: round(mbps(enc.fileSize, median(enc.readSeconds))),
      encryptMBps: round(mbps(enc.totalLength, median(enc.encryptSeconds))),
      encodeMBps: round(mbps(enc.totalLength, median(enc.encodeSeconds))),
      sha256MBps: round(mbps(enc.fileSize, enc.sha256Seconds)),
    };
    say(`browser: encoder ${JSON.stringify(b.encoder)}`);
    say(`browser: the filedrop page sending ${formatSize(browserFile.size)}`);
    const cpu = countCpu({ server: stack.pid });
    const up = await pageUpload(browser, stack, browserFile, 3_600_000);
    b.page = { ...up, mbps: round(mbps(browserFile.size, up.seconds)), cpu: roundCpu(cpu.end()), nodeUploadMBps: nodeUpload };
    say(`browser: page upload ${round(mbps(browserFile.size, up.seconds))} MB/s`);
    // Through a counting proxy, which the app must take for its public origin (origin checks).
    const proxy = await startCountingProxy();
    try {
      await restartStack(stack, smtp, { INKAST_PUBLIC_URL: proxy.url }, (app) => (proxy.target = app.port));
      const resume: ResumeCost[] = [];
      b.resume = resume;
      for (const reloadAt of opts.resumeAt) {
        say(`browser: resume after a reload at ${reloadAt} %, ${formatSize(resumeFile.size)}`);
        const rc = await resumeCost(browser, proxy.url, stack.app.slug, resumeFile, {
          uplinkBytesPerSecond: Math.max(2 * MiB, resumeFile.size / 12),
          reloadAt,
          wireBytes: proxy.bytesUp,
        });
        resume.push(rc);
        say(`browser: resume ${JSON.stringify(rc)}`);
      }
    } finally {
      await proxy.close();
    }
  } catch (err) {
    const message = `browser: ${(err as Error).stack ?? err}`;
    results.errors.push(message);
    say(message);
  } finally {
    await browser?.close();
  }
}

// ---- the report ----

/** CPU seconds per GiB that this work cost the parties of the stack (not the rest of the machine). */
function cpuPerGiB(s: OpSample): number {
  return (s.cpu.bench + s.cpu.client + s.cpu.server + s.cpu.rgw + s.cpu.osd) / (s.bytes / GiB);
}

/**
 * Where the machine is CPU-bound (2 shared cores), throughput is inversely proportional to the
 * CPU seconds per GiB of the stack's parties: then path ÷ raw cannot exceed cpu(raw) ÷ cpu(path),
 * the ceiling of this implementation. Whatever the code, the path does the raw operation's work
 * plus at least the cryptography (as Node does it: one thread, in memory) and, where the app
 * stands between the client and the store, one loopback hop; with every core busy on nothing
 * else it cannot be faster than cores ÷ (cpu(raw) + floor), which bounds the ratio for any
 * implementation on this machine.
 */
function cpuNote(path: OpSample[], raw: OpSample[], floor?: number): string {
  const p = median(path.map(cpuPerGiB));
  const r = median(raw.map(cpuPerGiB));
  const note = `CPU ${p.toFixed(1)} vs ${r.toFixed(1)} s/GiB → CPU-bound ceiling ${(r / p).toFixed(2)}×`;
  if (floor === undefined) return note;
  const fastest = (os.cpus().length * GiB) / (r + floor) / 1e6;
  const bound = fastest / median(raw.map((x) => x.mbps));
  return `${note}; raw's work + floor ${(r + floor).toFixed(1)} s/GiB → ≤ ${fastest.toFixed(0)} MB/s on ${os.cpus().length} cores (${bound.toFixed(2)}×) whatever the code`;
}

/** Medians of 3 on this VM move by a few per cent between paths that do the same work. */
const YARDSTICK_NOISE = 1.05;

/** A yardstick measured in the same rounds: what it is, and who could do no better than it. */
interface Yardstick {
  /** The row's text. */
  what: string;
  /** Short name in the note ("relay"). */
  name: string;
  /** What it bounds ("app"). */
  bounds: string;
}

/**
 * A yardstick against the raw operation: the most that any code doing what the yardstick does
 * (and Inkast must do at least that) gets on this machine, measured rather than modelled. Below
 * the target, the target is impossible for any such code here, unless Inkast's own path beat
 * the yardstick by more than this VM's noise: then it was no bound in that run (a reader's
 * wake-ups, below, can favour either).
 */
function yardstickRow(section: string, r: StoreResults, y: Yardstick, measured: OpSample[], raw: OpSample[], path: OpSample[]): Row {
  const med = (s: OpSample[]) => median(s.map((x) => x.mbps));
  const ratio = med(measured) / med(raw);
  const pathOver = med(path) / med(measured);
  const cpu = (s: OpSample[]) => median(s.map(cpuPerGiB)).toFixed(1);
  const reach =
    pathOver > YARDSTICK_NOISE
      ? `the ${y.bounds} beat the ${y.name}: no bound in this run`
      : ratio < 0.9
        ? `below 0.9×: impossible for any ${y.bounds} here`
        : `within reach of the ${y.bounds}`;
  return {
    section,
    store: r.store,
    what: `${formatSize(r.size)}: ${y.what}`,
    value: med(measured),
    unit: 'MB/s',
    n: measured.length,
    ratio,
    note: `${y.name} ÷ raw, ${reach}; ${y.bounds} ÷ ${y.name} ${pathOver.toFixed(2)}×; CPU ${y.name} ${cpu(measured)}, raw ${cpu(raw)}, ${y.bounds} ${cpu(path)} s/GiB`,
  };
}

const RELAY: Yardstick = { what: 'the same bytes through a bare relay (no crypto, no tus)', name: 'relay', bounds: 'app' };
const ENCRYPTING_RELAY: Yardstick = {
  what: 'the same bytes AES-256-GCM-encrypted by the sender (node:crypto, nothing else) through the bare relay',
  name: 'encrypting relay',
  bounds: 'app',
};

function rows(): Row[] {
  const out: Row[] = [];
  const med = (s: OpSample[]) => median(s.map((x) => x.mbps));
  const f = results.floor;
  // AES-GCM costs the same either way; the cheaper of Node's two APIs is the floor for encryption too.
  const gcmFloor = f && Math.min(f.gcmEncryptWebCrypto, f.gcmDecryptNode);
  const verifyFloor = f && f.gcmDecryptNode + f.sha256;
  // The app sits between sender and store: one loopback hop more than the raw operation.
  const hop = f?.loopback ?? 0;
  const downloadFloor = gcmFloor !== undefined ? gcmFloor + hop : undefined;
  // lib-storage signs each S3 part with its SHA-256, work the app's streamed parts (unsigned payload) skip.
  const uploadFloor = (store: string) => (f && gcmFloor !== undefined ? Math.max(0, (store === 'local' ? gcmFloor : gcmFloor - f.sha256) + hop) : undefined);
  for (const r of results.stores) {
    const size = formatSize(r.size);
    const n = r.upload.full.length;
    if (!n) continue;
    const up = med(r.upload.full) / med(r.upload.raw);
    out.push({ section: 'Upload', store: r.store, what: `${size}: encoder + tus-js-client → app`, value: med(r.upload.full), unit: 'MB/s', n });
    out.push({ section: 'Upload', store: r.store, what: `${size}: lib-storage straight to the store`, value: med(r.upload.raw), unit: 'MB/s', n, ratio: up, target: 0.9, note: cpuNote(r.upload.full, r.upload.raw, uploadFloor(r.store)) });
    if (r.relay?.write.length) out.push(yardstickRow('Upload', r, RELAY, r.relay.write, r.upload.raw, r.upload.full));
    if (r.relay?.writeEncrypted.length) out.push(yardstickRow('Upload', r, ENCRYPTING_RELAY, r.relay.writeEncrypted, r.upload.raw, r.upload.full));
    if (r.bare?.app.length) {
      const viaApp = med(r.bare.app);
      const viaBare = med(r.bare.bare);
      const cpu = (x: OpSample[]) => median(x.map((o) => o.cpu.server / (o.bytes / GiB))).toFixed(1);
      out.push({ section: 'Upload', store: r.store, what: `${size}: same client → tus inside next start`, value: viaApp, unit: 'MB/s', n: r.bare.app.length });
      out.push({
        section: 'Upload',
        store: r.store,
        what: `${size}: same client → bare @tus/server process`,
        value: viaBare,
        unit: 'MB/s',
        n: r.bare.bare.length,
        ratio: viaApp / viaBare,
        note: `app ÷ bare; server CPU ${cpu(r.bare.app)} vs ${cpu(r.bare.bare)} s/GiB`,
      });
    }
    const get = med(r.download.rawGet);
    out.push({ section: 'Download', store: r.store, what: `${size}: GET /api/files (decrypting)`, value: med(r.download.decrypting), unit: 'MB/s', n });
    out.push({ section: 'Download', store: r.store, what: `${size}: raw GET of the object`, value: get, unit: 'MB/s', n, ratio: med(r.download.decrypting) / get, target: 0.9, note: cpuNote(r.download.decrypting, r.download.rawGet, downloadFloor) });
    if (r.relay?.read.length) out.push(yardstickRow('Download', r, RELAY, r.relay.read, r.download.rawGet, r.download.decrypting));
    const exact = r.verify.job.every((j) => j.exact);
    out.push({
      section: 'Verify',
      store: r.store,
      what: `${size}: verify job in the app${exact ? '' : ' (status poll, incl. ≤1 s pickup)'}`,
      value: med(r.verify.job),
      unit: 'MB/s',
      n,
      ratio: med(r.verify.job) / get,
      target: 0.9,
      note: `vs the raw GET above; ${cpuNote(r.verify.job, r.download.rawGet, verifyFloor)}`,
    });
    const { oneThread, worker } = r.verify.bare;
    if (oneThread.length) {
      // The faster form is the bound; both are shown.
      const forms = [
        { samples: oneThread, what: 'one thread' },
        { samples: worker, what: 'reading here, decryption and hashing on a worker thread' },
      ].sort((a, b) => med(b.samples) - med(a.samples));
      for (const [k, form] of forms.entries()) {
        const y = { what: `bare verifier: raw GET + AES-256-GCM + SHA-256, ${form.what}`, name: 'bare verifier', bounds: 'verifier' };
        const row = yardstickRow('Verify', r, y, form.samples, r.download.rawGet, r.verify.job);
        out.push(k === 0 ? row : { ...row, note: `slower form, no bound of its own; CPU ${median(form.samples.map(cpuPerGiB)).toFixed(1)} s/GiB` });
      }
    }
    if (r.verify.inProcess.length) {
      const getAfter = med(r.verify.rawGetAfter);
      out.push({ section: 'Verify', store: r.store, what: `${size}: verifyStoredObject in-process, app stopped`, value: med(r.verify.inProcess), unit: 'MB/s', n });
      out.push({ section: 'Verify', store: r.store, what: `${size}: raw GET, app stopped`, value: getAfter, unit: 'MB/s', n, ratio: med(r.verify.inProcess) / getAfter, target: 0.9, note: cpuNote(r.verify.inProcess, r.verify.rawGetAfter, verifyFloor) });
    }
  }
  for (const bl of results.baseline) out.push({ section: 'Memory', store: 'local', what: `idle app, ${bl.config}`, value: bl.rss / MiB, unit: 'MiB RSS' });
  const alone = results.pgliteAlone;
  if (alone) {
    const pgIdle = results.baseline.find((b) => b.config === 'PostgreSQL')?.rss;
    const added = alone.open - alone.before;
    out.push({
      section: 'Memory',
      store: '-',
      what: 'PGlite alone: lib/db in a bare Node process, restarted (RSS it adds)',
      value: added / MiB,
      unit: 'MiB RSS',
      note: pgIdle ? `+ the app's idle with PostgreSQL = ${((pgIdle + added) / MiB).toFixed(0)} MiB before any transfer` : undefined,
    });
  }
  for (const m of results.memory) {
    const limit = m.what.includes('parallel') ? 512 : 256;
    out.push({ section: 'Memory', store: m.store, what: `${m.what}: idle before`, value: m.idleRss / MiB, unit: 'MiB RSS' });
    for (const p of m.phases) {
      const judged = m.what.includes('parallel') ? p.label.includes('uploads') : p.label === 'upload' || p.label === 'download';
      out.push({
        section: 'Memory',
        store: m.store,
        what: `${m.what}: ${p.label} (${p.mbps} MB/s)`,
        value: p.peakRss / MiB,
        unit: 'MiB peak RSS',
        limit: judged ? limit : undefined,
      });
    }
  }
  const b = results.browser as
    | { store: StoreKind; size: number; encoder?: Record<string, number>; page?: { mbps: number; nodeUploadMBps?: number }; resume?: ResumeCost[] }
    | undefined;
  if (b?.encoder) {
    const size = formatSize(b.size);
    out.push({ section: 'Browser', store: '-', what: `${size}: file read in a worker (File.slice)`, value: b.encoder.readMBps, unit: 'MB/s' });
    out.push({ section: 'Browser', store: '-', what: `${size}: AES-GCM alone in a worker (WebCrypto)`, value: b.encoder.encryptMBps, unit: 'MB/s' });
    out.push({ section: 'Browser', store: '-', what: `${size}: encoder in a worker (read + encrypt)`, value: b.encoder.encodeMBps, unit: 'MB/s' });
    out.push({ section: 'Browser', store: '-', what: `${size}: SHA-256 in a worker (hash-wasm)`, value: b.encoder.sha256MBps, unit: 'MB/s' });
  }
  if (b?.page) {
    out.push({
      section: 'Browser',
      store: b.store,
      what: `${formatSize(b.size)}: filedrop page upload`,
      value: b.page.mbps,
      unit: 'MB/s',
      ratio: b.encoder ? b.page.mbps / b.encoder.encodeMBps : undefined,
      note: `÷ encoder${b.page.nodeUploadMBps ? `; Node full path ${round(b.page.nodeUploadMBps)} MB/s` : ''}`,
    });
  }
  for (const rc of b?.resume ?? []) {
    out.push({
      section: 'Browser',
      store: b!.store,
      what: `resume, reload at ${rc.reloadedAtPercent} %: bytes on the wire beyond the object`,
      value: rc.wireOverhead / MiB,
      unit: 'MiB',
      limit: 4,
      note:
        `${rc.requests} requests' headers included; confirmed then lost ${(rc.lostAcked / MiB).toFixed(2)} MiB; ` +
        `re-sent past the server offset ${(rc.resentAfterReload / MiB).toFixed(2)} MiB`,
    });
  }
  if (f) {
    out.push({
      section: 'Floor',
      store: '-',
      what: 'CPU s/GiB, one thread, in memory: AES-GCM decrypt / SHA-256 / WebCrypto encrypt / copy; loopback hop',
      value: f.gcmDecryptNode + f.sha256,
      unit: 's/GiB (decrypt + hash)',
      note: `${f.gcmDecryptNode} / ${f.sha256} / ${f.gcmEncryptWebCrypto} / ${f.memcpy}; ${f.loopback}`,
    });
  }
  return out;
}

// ---- main ----

async function main(): Promise<void> {
  results.machine = machineInfo();
  const loadTimer = setInterval(() => results.load.push({ at: new Date().toISOString(), load1: round(loadAverage(), 2) }), 10_000);
  results.load.push({ at: new Date().toISOString(), load1: round(loadAverage(), 2) });
  const pgAdmin = await postgresAdminUrl();
  const db: DbKind = (flags.db as DbKind | undefined) ?? (pgAdmin ? 'postgres' : 'pglite');
  results.options.db = db;
  const needCeph = [...opts.stores, ...(opts.skipBig ? [] : [opts.bigStore])].includes('ceph');
  const s3: S3Settings | undefined = needCeph ? await s3Settings() : undefined;
  say(`bench: ${JSON.stringify({ ...opts, db })}`);
  say(`machine: ${JSON.stringify(results.machine)}; load ${loadAverage().toFixed(2)}`);

  const dir = fs.mkdtempSync(path.join(flags['tmp-dir']!, 'inkast-bench-'));
  const smtp = await startMailCatcher();
  const files: TestFile[] = [];
  const testFile = async (name: string, size: number) => {
    const existing = files.find((f) => f.size === size);
    if (existing) return existing;
    say(`generating ${name}: ${formatSize(size)} of random bytes`);
    const f = await makeTestFile(dir, name, size);
    files.push(f);
    return f;
  };
  try {
    results.floor = await floors();
    if (!opts.skipBaseline) await baseline(smtp, pgAdmin);
    const stores = [...new Set([...opts.stores, ...(opts.skipBig ? [] : [opts.bigStore])])];
    for (const store of stores) {
      const stack = await startStack({ store, db, smtp, s3Settings: s3, postgresAdminUrl: pgAdmin, profileDir: opts.profileDir });
      say(`${store}: app on ${stack.app.url}, pid ${stack.pid}, ${db}${stack.bucket ? `, bucket ${stack.bucket}` : ''}`);
      let storeResults: StoreResults | undefined;
      let sent: Sent[] = [];
      try {
        if (opts.stores.includes(store) && !opts.skipTransfer) {
          const t = await transfer(stack, await testFile('bench-main.bin', opts.size), await testFile('bench-warm.bin', WARM_UP_SIZE));
          storeResults = t.results;
          sent = t.sent;
          results.stores.push(storeResults);
          if (!opts.skipBare) await bareTusSection(stack, await testFile('bench-main.bin', opts.size), storeResults);
        }
        if (opts.stores.includes(store) && !opts.skipBrowser && opts.browserStore === store) {
          const nodeUp = storeResults && opts.browserSize === opts.size ? median(storeResults.upload.full.map((x) => x.mbps)) : undefined;
          await browserSection(stack, smtp, await testFile('bench-browser.bin', opts.browserSize), await testFile('bench-resume.bin', opts.resumeSize), nodeUp);
        }
        if (!opts.skipParallel && opts.parallelStores.includes(store) && opts.stores.includes(store)) {
          await parallelUploads(stack, smtp, await testFile('bench-parallel.bin', opts.parallelSize), opts.parallel);
        }
        if (!opts.skipBig && opts.bigStore === store) {
          const big = await testFile('bench-big.bin', opts.bigSize);
          await bigFile(stack, smtp, big);
          fs.rmSync(big.path, { force: true });
          files.splice(files.indexOf(big), 1);
        }
        await stack.app.stop();
        if (storeResults && sent.length) await verifyWithoutApp(stack, storeResults, sent);
      } catch (err) {
        const message = `${store}: ${(err as Error).stack ?? err}`;
        results.errors.push(message);
        say(message);
      } finally {
        await destroyStack(stack, { keep: flags.keep, postgresAdminUrl: pgAdmin });
      }
      // Measured again after each store, the machine idle: a floor taken in a slow minute would make a bound too tight.
      results.floor = lowest(results.floor, await floors());
    }
  } finally {
    clearInterval(loadTimer);
    await smtp.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  }

  results.finishedAt = new Date().toISOString();
  const table = rows();
  const loads = results.load.map((l) => l.load1);
  const header =
    `Inkast bench ${results.startedAt} → ${results.finishedAt} on ${results.machine.cpu} × ${results.machine.cores}, ` +
    `${results.machine.memoryGiB} GiB, ${results.options.db}; load avg median ${round(median(loads), 1)} (max ${round(Math.max(...loads), 1)})` +
    (opts.note ? `; ${opts.note}` : '');
  process.stdout.write(`\n${header}\n\n${renderTable(table)}\n`);
  if (results.errors.length) process.stdout.write(`\nErrors:\n${results.errors.join('\n')}\n`);
  fs.mkdirSync(flags.out!, { recursive: true });
  const stamp = results.startedAt.replace(/[:.]/g, '-');
  const json = path.join(flags.out!, `${stamp}.json`);
  fs.writeFileSync(json, JSON.stringify({ ...results, table }, null, 2));
  fs.writeFileSync(path.join(flags.out!, `${stamp}.md`), `${header}\n\n${renderMarkdown(table)}\n`);
  process.stdout.write(`\nResults: ${path.relative(process.cwd(), json)}\n`);
  if (results.errors.length) process.exitCode = 1;
}

for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    say(`${signal}: killing the app servers this run started`);
    killRunningApps();
    process.exit(130);
  });
}

await main();
