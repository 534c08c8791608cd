/** The refusals lib/mailboxes and lib/admin throw, as tests check them. */
import assert from 'node:assert/strict';
import { MailboxError } from '@/lib/mailboxes';

/** `p` rejects with a MailboxError of this status and code. */
export async function rejectsWithMailboxError(p: Promise<unknown>, status: number, code: string): Promise<void> {
  await assert.rejects(p, (err: unknown) => {
    assert.ok(err instanceof MailboxError, String(err));
    assert.equal(err.status, status);
    assert.equal(err.code, code);
    return true;
  });
}
