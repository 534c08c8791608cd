// Preloaded into the app server and the client process by `npm run bench -- --profile DIR`
// (--require …): samples the process's CPU from start; each SIGUSR2 writes a .cpuprofile (open it
// in Chrome DevTools or speedscope) to $INKAST_BENCH_PROFILE_DIR and starts a new one.
// (--cpu-prof is not allowed in NODE_OPTIONS, and `next start` gives no other way in.)
const fs = require('node:fs');
const path = require('node:path');
const inspector = require('node:inspector');

const dir = process.env.INKAST_BENCH_PROFILE_DIR || '/tmp';
const session = new inspector.Session();
session.connect();
let n = 0;
const start = () => {
  session.post('Profiler.enable', () => {
    session.post('Profiler.setSamplingInterval', { interval: 500 }, () => session.post('Profiler.start'));
  });
};
start();
process.on('SIGUSR2', () => {
  session.post('Profiler.stop', (err, result) => {
    if (!err) {
      fs.mkdirSync(dir, { recursive: true });
      fs.writeFileSync(path.join(dir, `${process.env.INKAST_BENCH_PROFILE_ROLE || 'server'}-${process.pid}-${++n}.cpuprofile`), JSON.stringify(result.profile));
    }
    start();
  });
});
