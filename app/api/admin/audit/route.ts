import { requireApiAdmin } from '@/lib/auth';
import { audit } from '@/lib/audit';
import { auditCsv, auditJson, exportAuditEntries, parseAuditFilter } from '@/lib/audit/list';
import { db } from '@/lib/db';
import { HttpError, route } from '@/lib/http';

export const runtime = 'nodejs';
export const dynamic = 'force-dynamic';

const formats = {
  csv: { type: 'text/csv; charset=utf-8', write: auditCsv },
  json: { type: 'application/json', write: auditJson },
} as const;

// The file is named for the Swedish day it was taken, like every time on the admin pages.
const today = new Intl.DateTimeFormat('sv-SE', { timeZone: 'Europe/Stockholm', year: 'numeric', month: '2-digit', day: '2-digit' });

/**
 * The audit log, filtered as on /admin/audit (`actor`, `action`, `target`, `from`, `to`), as a
 * CSV or JSON download (`format`). Streamed a page at a time: memory stays flat for any log.
 * Taking the export is itself audited, before the first byte leaves.
 */
export const GET = route(async (req: Request) => {
  const admin = await requireApiAdmin();
  const query = new URL(req.url).searchParams;
  const format = query.get('format') || 'csv';
  if (format !== 'csv' && format !== 'json') throw new HttpError(400, 'invalid-format', 'format is csv or json');
  const filter = parseAuditFilter(query);
  const q = await db();
  await q.transaction((tx) => audit(tx, { actor: `user:${admin.id}`, action: 'audit.exported', detail: { format, ...filter } }));

  const chunks = formats[format].write(exportAuditEntries(q, filter));
  const encoder = new TextEncoder();
  // Pulled, not pushed: the next page is read only once the client has taken the last.
  const body = new ReadableStream<Uint8Array>({
    async pull(controller) {
      const next = await chunks.next();
      if (next.done) controller.close();
      else controller.enqueue(encoder.encode(next.value));
    },
    async cancel() {
      await chunks.return(undefined);
    },
  });
  return new Response(body, {
    headers: {
      'Content-Type': formats[format].type,
      'Content-Disposition': `attachment; filename="inkast-audit-${today.format(new Date())}.${format}"`,
      'Cache-Control': 'no-store',
    },
  });
});
