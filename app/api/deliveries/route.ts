import { createDelivery } from '@/lib/deliveries';
import { json, readJson, route } from '@/lib/http';

export const runtime = 'nodejs';

export const POST = route(async (req: Request) => json(await createDelivery(await readJson(req)), 201));
