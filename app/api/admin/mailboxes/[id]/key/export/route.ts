import { exportMailboxKey } from '@/lib/admin';
import { adminRoute } from '@/lib/admin/http';
import { keyExportFileName, requireMailboxById } from '@/lib/admin/mailboxes';
import { HttpError } from '@/lib/http';

export const runtime = 'nodejs';

/** The mailbox's private keys, protected by the passphrase, as a file to keep offline. */
export const POST = adminRoute<{ id: string }>(async (_req, { admin, input, params }) => {
  const mailbox = await requireMailboxById(params.id);
  // Not trimmed: every character typed is part of the passphrase.
  const passphrase = typeof input.fields.passphrase === 'string' ? input.fields.passphrase : '';
  const confirmation = input.fields.passphraseConfirmation;
  if ((input.form || confirmation !== undefined) && confirmation !== passphrase) {
    throw new HttpError(400, 'passphrase-mismatch', 'The passphrase and its confirmation differ');
  }
  const exported = await exportMailboxKey(mailbox.id, passphrase, `user:${admin.id}`);
  return new Response(exported.armored, {
    headers: {
      'Content-Type': 'application/pgp-keys',
      'Content-Disposition': `attachment; filename="${keyExportFileName(mailbox)}"`,
      'Cache-Control': 'no-store',
    },
  });
}, '/admin/mailboxes');
