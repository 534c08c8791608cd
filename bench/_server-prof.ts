import { startMailCatcher } from '@/lib/testing/sign-in';
import { destroyStack, makeTestFile, sendFile, startStack, submitAndVerify, fileIdsOf, download } from './lib/stack';
import { countCpu } from './lib/proc';
const what = process.env.WHAT ?? 'upload';
const store = (process.env.STORE ?? 'local') as 'local' | 'ceph';
const smtp = await startMailCatcher();
const { s3Settings } = await import('@/lib/testing/targets');
const stack = await startStack({ store, db: 'postgres', smtp, postgresAdminUrl: 'postgres://postgres@127.0.0.1:5432/postgres', s3Settings: await s3Settings(), appEnv: { NODE_OPTIONS: '--require /work/main/bench/tools/cpu-profile-hook.cjs', INKAST_BENCH_PROFILE_DIR: '/tmp/bprof/server' } });
const mark = async () => { process.kill(stack.pid, 'SIGUSR2'); await new Promise((r) => setTimeout(r, 1500)); };
await mark();
const f = await makeTestFile('/tmp/bprof', 'p.bin', Number(process.env.SIZE ?? 512 * 2 ** 20));
const chunk = Number(process.env.CHUNK ?? 50 * 2 ** 20);
const c = countCpu(stack.pid);
const s = await sendFile(stack, f, chunk);
await mark();
console.log('upload', (f.size / 1e6 / s.seconds).toFixed(1), 'MB/s', JSON.stringify(c.end()));
if (what !== 'upload') {
  const c2 = countCpu(stack.pid);
  const v = await submitAndVerify(stack, s);
  await mark();
console.log('verify', (s.objectSize / 1e6 / (v.jobSeconds ?? v.pollSeconds)).toFixed(1), 'MB/s', JSON.stringify(c2.end()));
  const [id] = await fileIdsOf(stack, s.delivery.deliveryId);
  const c3 = countCpu(stack.pid);
  const d = await download(stack, id);
  await mark();
console.log('download', (f.size / 1e6 / d.seconds).toFixed(1), 'MB/s', JSON.stringify(c3.end()));
}
await destroyStack(stack, { postgresAdminUrl: 'postgres://postgres@127.0.0.1:5432/postgres' });
await smtp.stop();
