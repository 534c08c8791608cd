/**
 * `npx inkast <command>`: administration from a shell. Every command takes --json for scripts;
 * errors go to stderr with exit code 1 (bad input 2). `decrypt` is fully offline: it loads no
 * database module and needs no configuration.
 */
import fs from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { decryptObjectFile, OfflineError, readExportedKeys, readPassphraseFile } from '@/lib/admin/offline';

const USAGE = `Usage: inkast <command> [options]

  user create --email ADDRESS --name NAME [--role handler|admin] [--locale sv|en]
  user list                            every user: role, state, filedrop link, shared mailboxes
  user disable ADDRESS                 signs the user out everywhere and keeps them out
  user enable ADDRESS
  user role ADDRESS admin|handler      (the last enabled administrator stays one)
  mailbox create --name NAME [--email FUNCTIONAL-ADDRESS]
  mailbox add-member --mailbox ID-OR-SLUG --email USER-ADDRESS [--role handler|manager]
  mailbox list
  mailbox policy --mailbox ID-OR-SLUG [--verified-sender true|false] [--max-bytes N]
                 [--max-files N] [--retention-days N]
  link rotate --mailbox ID-OR-SLUG     new filedrop link; the old one stops at once
  link disable --mailbox ID-OR-SLUG    the link answers like an unknown one
  link enable --mailbox ID-OR-SLUG
  key rotate --mailbox ID-OR-SLUG      new key pair; earlier deliveries stay readable
  key export --mailbox ID-OR-SLUG --passphrase-file FILE --out FILE
                                       every private key of the mailbox, passphrase-protected
  master-key rotate                    re-wraps every private key still under
                                       INKAST_MASTER_KEY_PREVIOUS under INKAST_MASTER_KEY
                                       (rolling, no downtime: see docs/OPERATIONS.md)
  master-key rotate --new-key-file FILE
                                       offline: re-wraps every private key under a new master
                                       key (stop the app and workers first; afterwards set
                                       INKAST_MASTER_KEY to the new key and start them again)
  delivery delete --delivery ID        deletes a delivered or rejected delivery now
  retention run                        deletes what is past retention now (the worker does so hourly)
  decrypt --key FILE --passphrase-file FILE --object FILE [--out DIR]
                                       decrypts an object fetched from the bucket, offline
  audit verify                         checks the audit log's hash chain (exit 1 names the entry)
  worker                               run the job worker alone (no web server)

Options: --json  print the result as JSON
Settings come from the environment, as for the app (see docs/OPERATIONS.md).`;

class UsageError extends Error {}
/** A check that ran and failed (audit verify): exit 1, result already printed. */
class CheckFailed extends Error {}

const { values: opts, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    email: { type: 'string' },
    name: { type: 'string' },
    role: { type: 'string' },
    locale: { type: 'string' },
    mailbox: { type: 'string' },
    delivery: { type: 'string' },
    'verified-sender': { type: 'string' },
    'max-bytes': { type: 'string' },
    'max-files': { type: 'string' },
    'retention-days': { type: 'string' },
    'passphrase-file': { type: 'string' },
    'new-key-file': { type: 'string' },
    key: { type: 'string' },
    object: { type: 'string' },
    out: { type: 'string' },
    json: { type: 'boolean', default: false },
    help: { type: 'boolean', short: 'h', default: false },
  },
  strict: false,
});

/** What the CLI records as the actor in the audit log. */
const ACTOR = 'system';

function need(name: keyof typeof opts): string {
  const v = opts[name];
  if (typeof v !== 'string' || !v) throw new UsageError(`--${name} is required`);
  return v;
}

function optionalInt(name: keyof typeof opts): number | undefined {
  const v = opts[name];
  if (v === undefined) return undefined;
  if (typeof v !== 'string' || !/^\d+$/.test(v)) throw new UsageError(`--${name} must be a whole number`);
  return Number(v);
}

function optionalBool(name: keyof typeof opts): boolean | undefined {
  const v = opts[name];
  if (v === undefined) return undefined;
  if (v === 'true') return true;
  if (v === 'false') return false;
  throw new UsageError(`--${name} must be true or false`);
}

function readable(file: string, what: string): string {
  if (!fs.existsSync(file)) throw new UsageError(`${what} ${file} does not exist`);
  return file;
}

function print(result: Record<string, unknown>, text: string): void {
  console.log(opts.json ? JSON.stringify(result) : text);
}

/** Offline: only the key file, the passphrase and the object. */
async function decrypt(): Promise<void> {
  const keyFile = readable(need('key'), 'Key file');
  const passphrase = readPassphraseFile(readable(need('passphrase-file'), 'Passphrase file'));
  const objectFile = readable(need('object'), 'Object file');
  const keys = await readExportedKeys(fs.readFileSync(keyFile, 'utf8'), passphrase);
  const out = await decryptObjectFile(objectFile, keys, path.resolve(typeof opts.out === 'string' ? opts.out : '.'));
  print({ name: out.name, path: out.path, size: out.size, date: out.date.toISOString() }, `Decrypted ${out.name} (${out.size} bytes) to ${out.path}`);
}

async function run(): Promise<void> {
  const [noun, verb] = positionals;
  if (opts.help || !noun) {
    console.log(USAGE);
    return;
  }
  if (noun === 'decrypt') return decrypt();
  const { bootProcess, handleSignals } = await import('@/lib/boot');
  if (noun === 'worker') {
    handleSignals();
    await bootProcess({ worker: true, announce: true });
    return new Promise(() => {}); // runs until SIGTERM
  }
  const mailboxes = await import('@/lib/mailboxes');
  const { filedropUrl, findMailbox, findUserByEmail, listMailboxes, MailboxError } = mailboxes;
  const command = `${noun} ${verb ?? ''}`.trim();
  const known = [
    'user create', 'user list', 'user disable', 'user enable', 'user role', 'mailbox create', 'mailbox add-member', 'mailbox list', 'mailbox policy', 'link rotate', 'link disable',
    'link enable', 'key rotate', 'key export', 'master-key rotate', 'delivery delete', 'retention run', 'audit verify',
  ];
  if (!known.includes(command)) throw new UsageError(`Unknown command: ${command}`);
  await bootProcess({ worker: false });
  const admin = await import('@/lib/admin');
  const userAdmin = await import('@/lib/admin/users');
  const mailboxAdmin = await import('@/lib/admin/mailboxes');
  const mailboxArg = async () => admin.requireMailbox(need('mailbox'));
  switch (command) {
    case 'user create': {
      // As the users page does: audited, and the user is told by mail where to sign in.
      const user = await userAdmin.inviteUser({ email: need('email'), displayName: need('name'), role: opts.role, locale: opts.locale }, ACTOR);
      const url = filedropUrl(user.filedrop_slug!);
      print(
        { userId: user.id, email: user.email, role: user.role, mailboxId: user.personal_mailbox_id, filedropUrl: url },
        `Created ${user.role} ${user.email}\nFiledrop link: ${url}`,
      );
      break;
    }
    case 'user list': {
      const rows = (await userAdmin.listUsers()).map((u) => ({
        id: u.id,
        email: u.email,
        name: u.display_name,
        role: u.role,
        locale: u.locale,
        disabled: u.disabled_at !== null,
        createdAt: u.created_at.toISOString(),
        filedropUrl: u.filedrop_slug && filedropUrl(u.filedrop_slug),
        sharedMailboxes: u.shared_mailboxes,
      }));
      print(
        { users: rows },
        rows
          .map((r) => `${r.role.padEnd(7)} ${r.email}  ${r.name}  ${r.filedropUrl ?? '(no personal mailbox)'}  shared: ${r.sharedMailboxes}${r.disabled ? '  (disabled)' : ''}`)
          .join('\n'),
      );
      break;
    }
    case 'user disable':
    case 'user enable':
    case 'user role': {
      const address = positionals[2];
      if (!address) throw new UsageError(`${command} needs the user's email address`);
      const u = await findUserByEmail(address);
      if (!u) throw new MailboxError(404, 'unknown-user', `No user ${address}`);
      if (verb === 'role') {
        if (positionals[3] !== 'admin' && positionals[3] !== 'handler') throw new UsageError('user role needs the role: admin or handler');
        const changed = await userAdmin.setUserRole(u.id, positionals[3], ACTOR);
        print({ userId: changed.id, email: changed.email, role: changed.role }, `${changed.email} is ${changed.role === 'admin' ? 'an administrator' : 'a handler'}`);
      } else {
        const changed = verb === 'disable' ? await userAdmin.disableUser(u.id, ACTOR) : await userAdmin.enableUser(u.id, ACTOR);
        const disabled = changed.disabled_at !== null;
        print(
          { userId: changed.id, email: changed.email, disabled },
          disabled ? `${changed.email} is disabled and signed out everywhere` : `${changed.email} is enabled`,
        );
      }
      break;
    }
    case 'mailbox create': {
      const m = await mailboxAdmin.createSharedMailboxAudited({ name: need('name'), functionalEmail: opts.email as string | undefined }, ACTOR);
      const url = filedropUrl(m.filedrop_slug);
      print({ mailboxId: m.id, name: m.name, filedropUrl: url }, `Created shared mailbox ${m.name}\nFiledrop link: ${url}`);
      break;
    }
    case 'mailbox add-member': {
      const m = await findMailbox(need('mailbox'));
      if (!m) throw new MailboxError(404, 'unknown-mailbox', `No mailbox ${opts.mailbox}`);
      const member = await mailboxAdmin.addMemberByEmail(m.id, need('email'), (opts.role as 'handler' | 'manager' | undefined) ?? 'handler', ACTOR);
      print({ mailboxId: m.id, userId: member.userId }, `${member.email} is now a member of ${m.name}`);
      break;
    }
    case 'mailbox list': {
      const all = await listMailboxes();
      const rows = all.map((m) => ({ id: m.id, kind: m.kind, name: m.name, enabled: m.filedrop_enabled, filedropUrl: filedropUrl(m.filedrop_slug) }));
      print({ mailboxes: rows }, rows.map((r) => `${r.kind.padEnd(8)} ${r.name}  ${r.filedropUrl}${r.enabled ? '' : '  (disabled)'}`).join('\n'));
      break;
    }
    case 'mailbox policy': {
      const policy = {
        requireVerifiedSender: optionalBool('verified-sender'),
        maxDeliveryBytes: optionalInt('max-bytes'),
        maxFilesPerDelivery: optionalInt('max-files'),
        retentionDays: optionalInt('retention-days'),
      };
      if (Object.values(policy).every((v) => v === undefined)) {
        throw new UsageError('Give at least one of --verified-sender, --max-bytes, --max-files, --retention-days');
      }
      const m = await admin.setMailboxPolicy((await mailboxArg()).id, policy, ACTOR);
      const result = {
        mailboxId: m.id,
        requireVerifiedSender: m.require_verified_sender,
        maxDeliveryBytes: Number(m.max_delivery_bytes),
        maxFilesPerDelivery: m.max_files_per_delivery,
        retentionDays: m.retention_days,
      };
      print(
        result,
        `Policy of ${m.name}: verified senders ${result.requireVerifiedSender ? 'required' : 'not required'}, ` +
          `at most ${result.maxDeliveryBytes} bytes and ${result.maxFilesPerDelivery} files a delivery, kept ${result.retentionDays} days`,
      );
      break;
    }
    case 'link rotate': {
      const m = await admin.rotateFiledropLink((await mailboxArg()).id, ACTOR);
      const url = filedropUrl(m.filedrop_slug);
      print({ mailboxId: m.id, filedropUrl: url, enabled: m.filedrop_enabled }, `New filedrop link of ${m.name}: ${url}\nThe old link no longer works.`);
      break;
    }
    case 'link disable':
    case 'link enable': {
      const enabled = verb === 'enable';
      const m = await admin.setFiledropEnabled((await mailboxArg()).id, enabled, ACTOR);
      print({ mailboxId: m.id, enabled: m.filedrop_enabled }, `The filedrop link of ${m.name} is ${enabled ? 'enabled' : 'disabled'}`);
      break;
    }
    case 'key rotate': {
      const m = await mailboxArg();
      const r = await admin.rotateMailboxKey(m.id, ACTOR);
      print({ mailboxId: m.id, ...r }, `New key of ${m.name}: ${r.fingerprint}\nEarlier keys are kept for earlier deliveries.`);
      break;
    }
    case 'key export': {
      const passphrase = readPassphraseFile(readable(need('passphrase-file'), 'Passphrase file'));
      const out = need('out');
      if (fs.existsSync(out)) throw new UsageError(`${out} exists already; refusing to overwrite it`);
      const m = await mailboxArg();
      const exported = await admin.exportMailboxKey(m.id, passphrase, ACTOR);
      fs.writeFileSync(out, exported.armored + '\n', { mode: 0o600, flag: 'wx' });
      print(
        { mailboxId: m.id, out: path.resolve(out), fingerprints: exported.fingerprints },
        `Wrote ${exported.fingerprints.length} passphrase-protected key(s) of ${m.name} to ${out}`,
      );
      break;
    }
    case 'master-key rotate': {
      // Without --new-key-file: the rolling way, from INKAST_MASTER_KEY_PREVIOUS to INKAST_MASTER_KEY.
      const file = opts['new-key-file'] === undefined ? undefined : readable(need('new-key-file'), 'Key file');
      const newKey = file === undefined ? undefined : Buffer.from(fs.readFileSync(file, 'utf8').trim(), 'base64');
      const r = await admin.rotateMasterKey(newKey, ACTOR);
      const from = r.from.length ? r.from.join(', ') : '(none left)';
      print(
        { ...r },
        `Re-wrapped ${r.rewrapped} key(s) from master key ${from} to ${r.to}.\n` +
          (file
            ? `Now set INKAST_MASTER_KEY to the content of ${file} (or replace <dataDir>/master.key with it) and restart the app and workers.`
            : 'Every key is under INKAST_MASTER_KEY now: remove INKAST_MASTER_KEY_PREVIOUS, restarting one process at a time.'),
      );
      break;
    }
    case 'delivery delete': {
      const { deleteDelivery } = await import('@/lib/deliveries/retention');
      const d = await deleteDelivery(need('delivery'), ACTOR, 'handler');
      print({ ...d }, `Deleted delivery ${d.reference} (${d.files} file(s))`);
      break;
    }
    case 'retention run': {
      const { runRetention } = await import('@/lib/deliveries/retention');
      const deleted = await runRetention();
      print({ deleted: deleted.map((d) => ({ deliveryId: d.deliveryId, reference: d.reference })) }, `Deleted ${deleted.length} delivery(ies) past retention`);
      break;
    }
    case 'audit verify': {
      const [{ verifyAuditLog }, { db }] = await Promise.all([import('@/lib/audit'), import('@/lib/db')]);
      const v = await verifyAuditLog(await db());
      if (v.ok) {
        print({ ok: true, entries: v.entries }, `Audit log intact: ${v.entries} entries`);
      } else {
        print({ ok: false, entryId: v.entryId, reason: v.reason }, `Audit log BROKEN at entry ${v.entryId}: ${v.reason}`);
        throw new CheckFailed(`audit entry ${v.entryId}`);
      }
      break;
    }
  }
}

async function shutdown(): Promise<void> {
  // Only what was opened: decrypt and --help never load the database modules.
  const g = globalThis as typeof globalThis & { __inkastBoot?: unknown };
  if (g.__inkastBoot) await (await import('@/lib/boot')).shutdownProcess();
}

async function exitCode(err: unknown): Promise<number> {
  if (err instanceof UsageError) return 2;
  if (err instanceof CheckFailed || err instanceof OfflineError) return 1;
  const [{ ConfigError }, { MailboxError }] = await Promise.all([import('@/lib/config'), import('@/lib/mailboxes')]);
  if (err instanceof ConfigError) return 2;
  if (err instanceof MailboxError && err.status === 400) return 2;
  return 1;
}

try {
  await run();
  await shutdown();
} catch (err) {
  if (!(err instanceof CheckFailed)) {
    const message = err instanceof Error ? err.message : String(err);
    if (opts.json) console.error(JSON.stringify({ error: message, ...(err && typeof err === 'object' && 'code' in err ? { code: (err as { code: unknown }).code } : {}) }));
    else console.error(err instanceof UsageError ? `${message}\n\n${USAGE}` : message);
  }
  const code = await exitCode(err);
  await shutdown().catch(() => {});
  process.exit(code);
}
