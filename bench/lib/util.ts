/** Small helpers of the benchmark: sizes, statistics, formatting. */

const UNITS: Record<string, number> = {
  '': 1,
  b: 1,
  k: 1e3,
  kb: 1e3,
  m: 1e6,
  mb: 1e6,
  g: 1e9,
  gb: 1e9,
  kib: 2 ** 10,
  mib: 2 ** 20,
  gib: 2 ** 30,
};

/** "1GiB", "256MiB", "5GB", "1048576" → bytes. */
export function parseSize(text: string): number {
  const m = /^\s*(\d+(?:\.\d+)?)\s*([a-z]*)\s*$/i.exec(text);
  const unit = m ? UNITS[m[2].toLowerCase()] : undefined;
  if (!m || unit === undefined) throw new Error(`not a size: "${text}" (use e.g. 1GiB, 256MiB, 5GB)`);
  const n = Math.round(Number(m[1]) * unit);
  if (!Number.isSafeInteger(n) || n <= 0) throw new Error(`not a size: "${text}"`);
  return n;
}

/** Bytes in the unit that reads best: 1 GiB, 256 MiB, 5 GB (decimal when it is round). */
export function formatSize(bytes: number): string {
  for (const [unit, n] of [
    ['GiB', 2 ** 30],
    ['MiB', 2 ** 20],
    ['KiB', 2 ** 10],
  ] as const) {
    if (bytes >= n && bytes % n === 0) return `${bytes / n} ${unit}`;
  }
  for (const [unit, n] of [
    ['GB', 1e9],
    ['MB', 1e6],
  ] as const) {
    if (bytes >= n && bytes % n === 0) return `${bytes / n} ${unit}`;
  }
  if (bytes >= 2 ** 30) return `${(bytes / 2 ** 30).toFixed(2)} GiB`;
  if (bytes >= 2 ** 20) return `${(bytes / 2 ** 20).toFixed(1)} MiB`;
  return `${bytes} B`;
}

export const MiB = 2 ** 20;
export const GiB = 2 ** 30;

/** Throughput in MB/s (10^6 bytes per second), as TESTING.md quotes it. */
export const mbps = (bytes: number, seconds: number): number => bytes / 1e6 / seconds;

export function median(values: number[]): number {
  if (values.length === 0) return NaN;
  const s = [...values].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 ? s[mid] : (s[mid - 1] + s[mid]) / 2;
}

export const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

export const now = () => performance.now();

export const round = (n: number, digits = 1) => (Number.isFinite(n) ? Number(n.toFixed(digits)) : n);

export function formatMiB(bytes: number): string {
  return `${(bytes / MiB).toFixed(0)} MiB`;
}

/** Progress lines go to stderr, so that stdout holds only the table. */
export function say(message: string): void {
  const t = new Date().toISOString().slice(11, 19);
  process.stderr.write(`[${t}] ${message}\n`);
}
