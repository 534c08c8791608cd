/**
 * What the processes do while a benchmark step runs, read from /proc: the app server's resident
 * memory (sampled, and its kernel-kept peak VmHWM, reset per phase through clear_refs) and the
 * CPU seconds each party spends (this process, the app server, Ceph's radosgw and OSD, and the
 * rest of the machine, which other engineers' test runs share).
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

const CLK_TCK = 100; // sysconf(_SC_CLK_TCK) on Linux x86-64

function readProc(file: string): string | undefined {
  try {
    return fs.readFileSync(file, 'utf8');
  } catch {
    return undefined;
  }
}

function statFields(pid: number): string[] | undefined {
  const stat = readProc(`/proc/${pid}/stat`);
  if (!stat) return undefined;
  // The command name may hold spaces and parentheses: fields start after the last ')'.
  return stat.slice(stat.lastIndexOf(')') + 2).split(' ');
}

/** Direct children of a process. */
export function childrenOf(pid: number): number[] {
  const out: number[] = [];
  for (const entry of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const f = statFields(Number(entry));
    if (f && Number(f[1]) === pid) out.push(Number(entry));
  }
  return out;
}

export function cmdline(pid: number): string {
  return (readProc(`/proc/${pid}/cmdline`) ?? '').replace(/\0/g, ' ').trim();
}

/** `next start` renames itself "next-server (vX)": the app servers this process started. */
export function appServerPids(): number[] {
  return childrenOf(process.pid).filter((p) => cmdline(p).startsWith('next-server'));
}

/** CPU seconds (user + system) a process has used so far; undefined once it is gone. */
export function cpuSeconds(pid: number): number | undefined {
  const f = statFields(pid);
  if (!f) return undefined;
  // utime and stime are fields 14 and 15 of stat; f[0] is field 3.
  return (Number(f[11]) + Number(f[12])) / CLK_TCK;
}

/** Busy CPU seconds of the whole machine (all cores). */
function machineBusySeconds(): number {
  const line = (readProc('/proc/stat') ?? '').split('\n')[0];
  const v = line.trim().split(/\s+/).slice(1).map(Number);
  // user nice system idle iowait irq softirq steal
  const busy = v[0] + v[1] + v[2] + v[5] + v[6] + v[7];
  return busy / CLK_TCK;
}

/** kB fields of /proc/<pid>/status, as bytes. */
export function memoryOf(pid: number): { rss: number; hwm: number; anon: number } | undefined {
  const s = readProc(`/proc/${pid}/status`);
  if (!s) return undefined;
  const kb = (name: string) => Number(new RegExp(`^${name}:\\s+(\\d+)`, 'm').exec(s)?.[1] ?? NaN) * 1024;
  return { rss: kb('VmRSS'), hwm: kb('VmHWM'), anon: kb('RssAnon') };
}

/** Resets the kernel's peak-RSS counter (VmHWM) to the current RSS. Root, or the same user, only. */
function resetPeak(pid: number): boolean {
  try {
    fs.writeFileSync(`/proc/${pid}/clear_refs`, '5');
    return true;
  } catch {
    return false;
  }
}

export interface MemoryPhase {
  label: string;
  /** RSS when the phase began. */
  startRss: number;
  /** Highest RSS of the phase: the kernel's VmHWM (reset at the start) or the highest sample. */
  peakRss: number;
  /** Whether VmHWM could be reset: otherwise peakRss is from 50 ms samples only. */
  exactPeak: boolean;
  endRss: number;
  /** [seconds since the phase began, RSS in MiB], at most ~200 points. */
  timeline: [number, number][];
}

/** Samples one process's RSS every 50 ms for the length of a phase. */
export function watchMemory(pid: number, label: string): { end(): MemoryPhase } {
  const exactPeak = resetPeak(pid);
  const t0 = performance.now();
  const startRss = memoryOf(pid)?.rss ?? NaN;
  const samples: [number, number][] = [];
  let max = startRss;
  const timer = setInterval(() => {
    const m = memoryOf(pid);
    if (!m) return;
    max = Math.max(max, m.rss);
    samples.push([(performance.now() - t0) / 1000, m.rss]);
  }, 50);
  return {
    end() {
      clearInterval(timer);
      const m = memoryOf(pid);
      const peak = Math.max(max, exactPeak && m ? m.hwm : 0);
      const step = Math.max(1, Math.ceil(samples.length / 200));
      return {
        label,
        startRss,
        peakRss: peak,
        exactPeak,
        endRss: m?.rss ?? NaN,
        timeline: samples.filter((_, i) => i % step === 0).map(([t, r]) => [Number(t.toFixed(2)), Math.round(r / 2 ** 20)]),
      };
    },
  };
}

/** The Ceph daemons of the test cluster (scripts/ceph-rgw-start.sh writes their pid files). */
export function cephPids(): Record<string, number> {
  const dir = path.join(process.env.TMPDIR ?? os.tmpdir(), 'inkast-ceph', 'run');
  const out: Record<string, number> = {};
  for (const f of fs.existsSync(dir) ? fs.readdirSync(dir) : []) {
    if (!f.endsWith('.pid')) continue;
    const pid = Number((readProc(path.join(dir, f)) ?? '').trim());
    if (!pid || !readProc(`/proc/${pid}/stat`)) continue;
    const name = f.includes('rgw') ? 'rgw' : f.startsWith('osd') ? 'osd' : f.startsWith('mon') ? 'mon' : f.replace(/\.pid$/, '');
    out[name] = pid;
  }
  return out;
}

export interface CpuUse {
  /** CPU seconds per party over the step. */
  bench: number;
  /** The client process: sender, handler, raw store client (bench/tools/client.ts). */
  client: number;
  server: number;
  rgw: number;
  osd: number;
  /** Everything else on the machine: other engineers' builds and tests, the kernel's own threads. */
  others: number;
  wall: number;
}

/** Starts counting CPU seconds; `end()` returns what each party used since. */
export function countCpu(pids: { server?: number; client?: number }): { end(): CpuUse } {
  const ceph = cephPids();
  const read = () => ({
    bench: cpuSeconds(process.pid) ?? 0,
    client: pids.client ? (cpuSeconds(pids.client) ?? 0) : 0,
    server: pids.server ? (cpuSeconds(pids.server) ?? 0) : 0,
    rgw: ceph.rgw ? (cpuSeconds(ceph.rgw) ?? 0) : 0,
    osd: ceph.osd ? (cpuSeconds(ceph.osd) ?? 0) : 0,
    mon: ceph.mon ? (cpuSeconds(ceph.mon) ?? 0) : 0,
    machine: machineBusySeconds(),
    at: performance.now(),
  });
  const a = read();
  return {
    end() {
      const b = read();
      const d = (k: keyof typeof a) => b[k] - a[k];
      const ours = d('bench') + d('client') + d('server') + d('rgw') + d('osd') + d('mon');
      return {
        bench: d('bench'),
        client: d('client'),
        server: d('server'),
        rgw: d('rgw'),
        osd: d('osd'),
        others: Math.max(0, d('machine') - ours),
        wall: (b.at - a.at) / 1000,
      };
    },
  };
}

/** 1-minute load average, and the machine's cores, for the record. */
export function loadAverage(): number {
  return os.loadavg()[0];
}
