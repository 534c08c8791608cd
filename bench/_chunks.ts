import { startMailCatcher } from '@/lib/testing/sign-in';
import { s3Settings } from '@/lib/testing/targets';
import { destroyStack, makeTestFile, sendFile, startStack, rawWrite, rawDelete } from './lib/stack';
import { countCpu } from './lib/proc';
const store = (process.env.STORE ?? 'ceph') as 'local' | 'ceph';
const smtp = await startMailCatcher();
const stack = await startStack({ store, db: 'postgres', smtp, postgresAdminUrl: 'postgres://postgres@127.0.0.1:5432/postgres', s3Settings: await s3Settings() });
const f = await makeTestFile('/tmp/bprof', 'p.bin', Number(process.env.SIZE ?? 512 * 2 ** 20));
const chunks = (process.env.CHUNKS ?? '50,48,200').split(',').map((c) => Number(c) * 2 ** 20);
for (let r = 0; r < Number(process.env.ROUNDS ?? 2); r++) {
  for (const chunk of chunks) {
    const c = countCpu(stack.pid);
    const s = await sendFile(stack, f, chunk);
    const u = c.end(); const g = f.size / 2 ** 30;
    console.log(`chunk ${chunk / 2 ** 20} MiB: ${(f.size / 1e6 / s.seconds).toFixed(1)} MB/s  cpu/GiB bench ${(u.bench / g).toFixed(2)} server ${(u.server / g).toFixed(2)} rgw ${(u.rgw / g).toFixed(2)} osd ${(u.osd / g).toFixed(2)} others ${(u.others / g).toFixed(2)}`);
    await rawDelete(stack, s.uploadId);
  }
  const c = countCpu(stack.pid);
  const w = await rawWrite(stack, f, 'raw', { partSize: 8 * 2 ** 20, queueSize: 4 });
  const u = c.end(); const g = f.size / 2 ** 30;
  console.log(`raw: ${(f.size / 1e6 / w.seconds).toFixed(1)} MB/s  cpu/GiB bench ${(u.bench / g).toFixed(2)} rgw ${(u.rgw / g).toFixed(2)} osd ${(u.osd / g).toFixed(2)} others ${(u.others / g).toFixed(2)}`);
  await rawDelete(stack, 'raw');
}
await destroyStack(stack, { postgresAdminUrl: 'postgres://postgres@127.0.0.1:5432/postgres' });
await smtp.stop();
