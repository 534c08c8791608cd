/** A real SMTP server on loopback for tests: everything it accepts, parsed; 550 for nobody@…. */
import { simpleParser, type AddressObject, type ParsedMail } from 'mailparser';
import { SMTPServer } from 'smtp-server';
import { freePort } from './app';

export class TestSmtp {
  readonly received: ParsedMail[] = [];
  private server: SMTPServer | undefined;
  constructor(readonly port: number) {}

  static async start(): Promise<TestSmtp> {
    const smtp = new TestSmtp(await freePort());
    await smtp.resume();
    return smtp;
  }

  async resume(): Promise<void> {
    const server = new SMTPServer({
      authOptional: true,
      disabledCommands: ['STARTTLS'],
      logger: false,
      onRcptTo: (address, _session, callback) => {
        if (!address.address.startsWith('nobody@')) return callback();
        callback(Object.assign(new Error('5.1.1 No such user'), { responseCode: 550 }));
      },
      onData: (stream, _session, callback) => {
        simpleParser(stream).then((mail) => {
          this.received.push(mail);
          callback();
        }, callback);
      },
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.port, '127.0.0.1', () => resolve());
    });
    this.server = server;
  }

  async stop(): Promise<void> {
    const server = this.server;
    this.server = undefined;
    if (server) await new Promise<void>((r) => server.close(() => r()));
  }

  to(address: string): ParsedMail[] {
    return this.received.filter((m) => (m.to as AddressObject).value.some((a) => a.address === address));
  }
}
