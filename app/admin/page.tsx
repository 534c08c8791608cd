import { redirect } from 'next/navigation';
import { requireAdmin } from '@/lib/auth';

/** The administration starts with its users. */
export default async function AdminPage() {
  await requireAdmin('/admin');
  redirect('/admin/users');
}
