/** `npm run worker`: the job worker alone, for a deployment that runs the web app without one. */
import { bootProcess, handleSignals } from '@/lib/boot';

handleSignals();
await bootProcess({ worker: true, announce: true });
