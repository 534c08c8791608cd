/**
 * `npx inkast <command>`: administration from a shell. Every command takes --json for scripts;
 * errors go to stderr with exit code 1 (bad input 2).
 */
import { parseArgs } from 'node:util';
import { bootProcess, handleSignals, shutdownProcess } from '@/lib/boot';
import { ConfigError } from '@/lib/config';
import {
  addMember,
  createSharedMailbox,
  createUser,
  filedropUrl,
  findMailbox,
  findUserByEmail,
  listMailboxes,
  MailboxError,
} from '@/lib/mailboxes';

const USAGE = `Usage: inkast <command> [options]

  user create --email ADDRESS --name NAME [--role handler|admin] [--locale sv|en]
  mailbox create --name NAME [--email FUNCTIONAL-ADDRESS]
  mailbox add-member --mailbox ID-OR-SLUG --email USER-ADDRESS
  mailbox list
  worker                      run the job worker alone (no web server)

Options: --json  print the result as JSON
Settings come from the environment, as for the app (see docs/OPERATIONS.md).`;

class UsageError extends Error {}

const { values: opts, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    email: { type: 'string' },
    name: { type: 'string' },
    role: { type: 'string' },
    locale: { type: 'string' },
    mailbox: { type: 'string' },
    json: { type: 'boolean', default: false },
    help: { type: 'boolean', short: 'h', default: false },
  },
  strict: false,
});

function need(name: keyof typeof opts): string {
  const v = opts[name];
  if (typeof v !== 'string' || !v) throw new UsageError(`--${name} is required`);
  return v;
}

function print(result: Record<string, unknown>, text: string): void {
  console.log(opts.json ? JSON.stringify(result) : text);
}

async function run(): Promise<void> {
  const [noun, verb] = positionals;
  if (opts.help || !noun) {
    console.log(USAGE);
    return;
  }
  if (noun === 'worker') {
    handleSignals();
    await bootProcess({ worker: true, announce: true });
    return new Promise(() => {}); // runs until SIGTERM
  }
  await bootProcess({ worker: false });
  const command = `${noun} ${verb ?? ''}`.trim();
  switch (command) {
    case 'user create': {
      const { user, mailbox } = await createUser({
        email: need('email'),
        displayName: need('name'),
        role: (opts.role as 'admin' | 'handler' | undefined) ?? 'handler',
        locale: (opts.locale as 'sv' | 'en' | undefined) ?? 'sv',
      });
      const url = filedropUrl(mailbox.filedrop_slug);
      print(
        { userId: user.id, email: user.email, role: user.role, mailboxId: mailbox.id, filedropUrl: url },
        `Created ${user.role} ${user.email}\nFiledrop link: ${url}`,
      );
      break;
    }
    case 'mailbox create': {
      const m = await createSharedMailbox({ name: need('name'), functionalEmail: opts.email as string | undefined });
      const url = filedropUrl(m.filedrop_slug);
      print({ mailboxId: m.id, name: m.name, filedropUrl: url }, `Created shared mailbox ${m.name}\nFiledrop link: ${url}`);
      break;
    }
    case 'mailbox add-member': {
      const m = await findMailbox(need('mailbox'));
      if (!m) throw new MailboxError(404, 'unknown-mailbox', `No mailbox ${opts.mailbox}`);
      const u = await findUserByEmail(need('email'));
      if (!u) throw new MailboxError(404, 'unknown-user', `No user ${opts.email}`);
      await addMember(m.id, u.id);
      print({ mailboxId: m.id, userId: u.id }, `${u.email} is now a member of ${m.name}`);
      break;
    }
    case 'mailbox list': {
      const all = await listMailboxes();
      const rows = all.map((m) => ({ id: m.id, kind: m.kind, name: m.name, enabled: m.filedrop_enabled, filedropUrl: filedropUrl(m.filedrop_slug) }));
      print({ mailboxes: rows }, rows.map((r) => `${r.kind.padEnd(8)} ${r.name}  ${r.filedropUrl}${r.enabled ? '' : '  (disabled)'}`).join('\n'));
      break;
    }
    default:
      throw new UsageError(`Unknown command: ${command}`);
  }
}

try {
  await run();
  await shutdownProcess();
} catch (err) {
  const message = err instanceof Error ? err.message : String(err);
  if (opts.json) console.error(JSON.stringify({ error: message }));
  else console.error(err instanceof UsageError ? `${message}\n\n${USAGE}` : message);
  await shutdownProcess().catch(() => {});
  process.exit(err instanceof UsageError || err instanceof ConfigError || (err instanceof MailboxError && err.status === 400) ? 2 : 1);
}
