/**
 * The bench's client process (bench/tools/client.ts): forked once per stack, asked over IPC to
 * run one operation at a time or several at once. Its pid lets the bench count its CPU apart.
 */
import { fork } from 'node:child_process';
import path from 'node:path';
import type { ClientAnswer, ClientOps, ClientRequest } from '../tools/client';

export interface Client {
  pid: number;
  run<K extends keyof ClientOps>(op: K, args: Parameters<ClientOps[K]>[0]): ReturnType<ClientOps[K]>;
  stop(): Promise<void>;
}

/** `profile`: preload the CPU profiling hook (bench/tools/cpu-profile-hook.cjs), writing into `dir`. */
export async function startClient(profile?: { hook: string; dir: string }): Promise<Client> {
  const root = path.resolve(import.meta.dirname, '..', '..');
  const child = fork(path.join(root, 'bench', 'tools', 'client.ts'), [], {
    cwd: root,
    execArgv: ['--import', 'tsx', ...(profile ? ['--require', profile.hook] : [])],
    env: profile ? { ...process.env, INKAST_BENCH_PROFILE_DIR: profile.dir, INKAST_BENCH_PROFILE_ROLE: 'client' } : process.env,
  });
  const pending = new Map<number, { resolve(v: unknown): void; reject(e: Error): void }>();
  let nextId = 0;
  let exited: Error | undefined;
  child.on('message', (a: ClientAnswer) => {
    const p = pending.get(a.id);
    pending.delete(a.id);
    if ('error' in a) p?.reject(new Error(`client process: ${a.error}`));
    else p?.resolve(a.value);
  });
  child.once('exit', (code, signal) => {
    exited = new Error(`the client process exited (${signal ?? code})`);
    for (const p of pending.values()) p.reject(exited);
    pending.clear();
  });
  await new Promise<void>((resolve, reject) => {
    child.once('spawn', resolve);
    child.once('error', reject);
  });
  return {
    pid: child.pid!,
    run(op, args) {
      if (exited) return Promise.reject(exited) as never;
      const id = nextId++;
      const answer = new Promise((resolve, reject) => pending.set(id, { resolve, reject }));
      child.send({ id, op, args } satisfies ClientRequest);
      return answer as never;
    },
    stop: () =>
      new Promise<void>((resolve) => {
        if (child.exitCode !== null || child.signalCode !== null) return resolve();
        child.once('exit', () => resolve());
        child.disconnect();
      }),
  };
}
