import { setMailboxPolicy, type MailboxPolicy } from '@/lib/admin';
import { adminDone, adminRoute } from '@/lib/admin/http';
import { policyFromForm, requireMailboxById } from '@/lib/admin/mailboxes';

export const runtime = 'nodejs';

/** A form's strings are converted first; JSON goes to mailboxPolicySchema as sent. */
export const POST = adminRoute<{ id: string }>(async (_req, { admin, input, params }) => {
  const { id } = await requireMailboxById(params.id);
  const policy = input.form ? policyFromForm(input.fields) : (input.fields as MailboxPolicy);
  const m = await setMailboxPolicy(id, policy, `user:${admin.id}`);
  return adminDone(input, 'policy-saved', {
    requireVerifiedSender: m.require_verified_sender,
    maxDeliveryBytes: Number(m.max_delivery_bytes),
    maxFilesPerDelivery: m.max_files_per_delivery,
    retentionDays: m.retention_days,
  });
}, '/admin/mailboxes');
