import { handleTusRequest } from '@/lib/uploads';

export const runtime = 'nodejs';
export const dynamic = 'force-dynamic';

// handleWeb needs its `this`, so each method is a wrapper, not the bare method.
const handle = (req: Request) => handleTusRequest(req);

export { handle as GET, handle as HEAD, handle as POST, handle as PATCH, handle as DELETE, handle as OPTIONS };
