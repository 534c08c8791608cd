/**
 * clamd's INSTREAM protocol over node:net (TCP or a unix socket), no client library:
 *
 *   → "zINSTREAM\0", then chunks as <4-byte big-endian length><bytes>, then <0000>
 *   ← "stream: OK\0" | "stream: <signature> FOUND\0" | "<reason> ERROR\0"
 *
 * clamd keeps the stream in a temporary file and scans it when the zero-length chunk arrives.
 * It refuses a stream longer than its StreamMaxLength ("INSTREAM size limit exceeded. ERROR").
 */
import net from 'node:net';

export type ClamdTarget = { socket: string } | { host: string; port: number };

export type ClamdVerdict = { infected: false } | { infected: true; signature: string };

/** clamd could not be reached or could not scan: the caller must not treat the file as clean. */
export class ClamdError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ClamdError';
  }
}

/** Largest chunk sent in one frame: well under clamd's buffer, small enough for backpressure. */
const FRAME = 64 * 1024;

function connect(target: ClamdTarget, timeoutMs: number): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const socket = 'socket' in target ? net.connect({ path: target.socket }) : net.connect({ host: target.host, port: target.port });
    socket.setTimeout(timeoutMs);
    const fail = (err: Error) => {
      socket.destroy();
      reject(new ClamdError(`cannot reach clamd: ${err.message}`));
    };
    socket.once('error', fail);
    socket.once('timeout', () => fail(new Error('connection timed out')));
    socket.once('connect', () => {
      socket.removeListener('error', fail);
      socket.removeAllListeners('timeout');
      resolve(socket);
    });
  });
}

/** Collects clamd's one NUL-terminated reply (or what it said before closing). */
function replyOf(socket: net.Socket, timeoutMs: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const parts: Buffer[] = [];
    let done = false;
    const finish = (err?: Error) => {
      if (done) return;
      done = true;
      const text = Buffer.concat(parts).toString('utf8');
      const reply = text.split('\0')[0].trim();
      if (reply) resolve(reply);
      else reject(new ClamdError(err ? `clamd connection failed: ${err.message}` : 'clamd closed the connection without an answer'));
    };
    socket.on('data', (d: Buffer) => {
      parts.push(d);
      if (d.includes(0)) {
        finish();
        socket.end();
      }
    });
    socket.once('end', () => finish());
    socket.once('close', () => finish());
    socket.once('error', (err) => finish(err));
    socket.setTimeout(timeoutMs, () => {
      finish(new Error(`no answer within ${timeoutMs} ms`));
      socket.destroy();
    });
  });
}

function verdictOf(reply: string): ClamdVerdict {
  // "stream: OK", "stream: Eicar-Test-Signature FOUND" (with or without an "<id>: " prefix).
  const body = reply.replace(/^(\d+: )?stream: /, '');
  if (body === 'OK') return { infected: false };
  const found = /^(.+) FOUND$/.exec(body);
  if (found) return { infected: true, signature: found[1].trim().slice(0, 200) };
  throw new ClamdError(`clamd could not scan: ${reply.slice(0, 200)}`);
}

/** "PONG" when clamd is up. */
export async function clamdPing(target: ClamdTarget, timeoutMs = 5000): Promise<void> {
  const socket = await connect(target, timeoutMs);
  const reply = replyOf(socket, timeoutMs);
  socket.write('zPING\0');
  const answer = await reply;
  if (answer !== 'PONG') throw new ClamdError(`clamd answered PING with ${answer.slice(0, 100)}`);
}

/** One INSTREAM scan in progress: write the bytes in order, then finish for the verdict. */
export interface ClamdStream {
  /** Sends bytes (waits while clamd is slow to read). Throws ClamdError when clamd went away. */
  write(bytes: Uint8Array): Promise<void>;
  /** Ends the stream and waits for the verdict. */
  finish(): Promise<ClamdVerdict>;
  /** Gives up (the file turned out unreadable): closes the connection, no verdict. */
  abort(): void;
}

export async function openClamdStream(target: ClamdTarget, timeoutMs = 120_000): Promise<ClamdStream> {
  const socket = await connect(target, timeoutMs);
  const reply = replyOf(socket, timeoutMs);
  // An early answer (size limit, clamd shutting down) arrives while we still write.
  let early: string | undefined;
  let failure: Error | undefined;
  reply.then(
    (r) => (early = r),
    (err: Error) => (failure = err),
  );
  socket.on('error', (err) => (failure ??= new ClamdError(`clamd connection failed: ${err.message}`)));

  const send = (buf: Uint8Array) =>
    new Promise<void>((resolve, reject) => {
      if (failure) return reject(failure);
      if (early !== undefined || socket.destroyed) return reject(new ClamdError(`clamd stopped reading: ${early ?? 'closed'}`));
      if (socket.write(buf)) return resolve();
      const onDrain = () => (cleanup(), resolve());
      const onClose = () => (cleanup(), reject(failure ?? new ClamdError(`clamd stopped reading: ${early ?? 'closed'}`)));
      const cleanup = () => {
        socket.removeListener('drain', onDrain);
        socket.removeListener('close', onClose);
      };
      socket.once('drain', onDrain);
      socket.once('close', onClose);
    });

  await send(Buffer.from('zINSTREAM\0', 'latin1'));
  return {
    async write(bytes) {
      for (let at = 0; at < bytes.byteLength; at += FRAME) {
        const piece = bytes.subarray(at, Math.min(bytes.byteLength, at + FRAME));
        const frame = Buffer.allocUnsafe(4 + piece.byteLength);
        frame.writeUInt32BE(piece.byteLength, 0);
        frame.set(piece, 4);
        try {
          await send(frame);
        } catch (err) {
          // clamd may have answered already (e.g. the size limit): report that.
          if (early !== undefined) verdictOf(early);
          throw err;
        }
      }
    },
    async finish() {
      if (early === undefined && !failure) await send(Buffer.alloc(4));
      return verdictOf(await reply);
    },
    abort() {
      socket.destroy();
    },
  };
}

/** Scans bytes held in memory (tests, small files). */
export async function clamdScanBytes(target: ClamdTarget, bytes: Uint8Array, timeoutMs?: number): Promise<ClamdVerdict> {
  const stream = await openClamdStream(target, timeoutMs);
  try {
    await stream.write(bytes);
    return await stream.finish();
  } catch (err) {
    stream.abort();
    throw err;
  }
}
