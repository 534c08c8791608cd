/** Node-only start-up of the web app process, imported from instrumentation.ts. */
import { ConfigError, config } from '@/lib/config';
import { bootProcess, handleSignals } from './index';

try {
  config();
  handleSignals();
  await bootProcess();
} catch (err) {
  // A throw here would turn every route into a 500: stop with a message instead.
  console.error(err instanceof ConfigError ? err.message : `Inkast could not start: ${(err as Error).message}`);
  process.exit(1);
}
