/** The page's side of the encryption worker: typed calls that resolve with the worker's answer. */
import type { WorkerOp, WorkerOps, WorkerReply, WorkerRequest } from './worker-protocol';

/** The worker could not do what was asked; `kind` says whether the file or the crypto failed. */
export class WorkerError extends Error {
  constructor(
    readonly kind: 'fileRead' | 'crypto',
    message: string,
  ) {
    super(message);
    this.name = 'WorkerError';
  }
}

export class EncryptWorker {
  private readonly worker: Worker;
  private nextId = 1;
  private readonly pending = new Map<number, { resolve: (value: unknown) => void; reject: (err: Error) => void }>();

  constructor() {
    this.worker = new Worker(new URL('./encrypt.worker.ts', import.meta.url), { type: 'module' });
    this.worker.onmessage = (event: MessageEvent<WorkerReply>) => {
      const reply = event.data;
      const call = this.pending.get(reply.id);
      if (!call) return;
      this.pending.delete(reply.id);
      if (reply.ok) call.resolve(reply.result);
      else call.reject(new WorkerError(reply.kind, reply.message));
    };
    // A worker that fails to load or crashes answers nothing more: fail every open call.
    this.worker.onerror = (event) => {
      event.preventDefault();
      for (const call of this.pending.values()) call.reject(new WorkerError('crypto', event.message || 'worker failed'));
      this.pending.clear();
    };
  }

  call<O extends WorkerOp>(op: O, args: WorkerOps[O][0]): Promise<WorkerOps[O][1]> {
    const id = this.nextId++;
    const request: WorkerRequest<O> = { id, op, args };
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve: resolve as (value: unknown) => void, reject });
      this.worker.postMessage(request);
    });
  }

  terminate(): void {
    this.worker.terminate();
    for (const call of this.pending.values()) call.reject(new WorkerError('crypto', 'worker stopped'));
    this.pending.clear();
  }
}
