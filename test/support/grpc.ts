// Real gRPC servers and clients (@grpc/grpc-js) for the tests: an Echo service with every kind of
// call, and the standard grpc.health.v1 service.

import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import * as loader from '@grpc/proto-loader';

const FIXTURES = join(import.meta.dirname, '..', 'fixtures', 'grpc');

const definition = loader.loadSync([join(FIXTURES, 'echo.proto'), join(FIXTURES, 'health.proto')], {
  keepCase: true,
  longs: Number,
  defaults: true,
});
// biome-ignore lint/suspicious/noExplicitAny: grpc-js builds these types at run time from the .proto.
const proto = grpc.loadPackageDefinition(definition) as any;

export interface Msg {
  text: string;
  from?: string;
  count?: number;
  payload?: Buffer;
}

export interface GrpcServer {
  readonly name: string;
  readonly address: string;
  /** Calls taken, by method. */
  readonly calls: Record<string, number>;
  /** Calls whose client went away before the server finished (cancellation reached the server). */
  cancelled: number;
  /** What the health service answers. */
  serving: 'SERVING' | 'NOT_SERVING';
  /** Stops at once: connections and calls in flight are cut (a killed process). */
  close(): Promise<void>;
  /** Stops gracefully: GOAWAY, calls in flight finish, no new ones are taken. */
  shutdown(): Promise<void>;
}

export async function startGrpcServer(name: string): Promise<GrpcServer> {
  const server = new grpc.Server({ 'grpc.max_receive_message_length': 16 * 1024 * 1024 });
  const state: GrpcServer = {
    name,
    address: '',
    calls: { Unary: 0, ServerStream: 0, ClientStream: 0, Bidi: 0 },
    cancelled: 0,
    serving: 'SERVING',
    close: () =>
      new Promise<void>((resolve) => {
        server.forceShutdown();
        resolve();
      }),
    shutdown: () => new Promise<void>((resolve) => server.tryShutdown(() => resolve())),
  };
  server.addService(proto.wharf.test.Echo.service, {
    Unary(call: grpc.ServerUnaryCall<Msg, Msg>, cb: grpc.sendUnaryData<Msg>) {
      state.calls.Unary++;
      const wait = call.request.count ?? 0;
      const answer = () => cb(null, { text: call.request.text, from: name, payload: call.request.payload });
      if (wait > 0) {
        const t = setTimeout(answer, wait);
        call.on('cancelled', () => {
          state.cancelled++;
          clearTimeout(t);
        });
      } else answer();
    },
    ServerStream(call: grpc.ServerWritableStream<Msg, Msg>) {
      state.calls.ServerStream++;
      let i = 0;
      const n = call.request.count ?? 1;
      call.on('cancelled', () => {
        state.cancelled++;
      });
      const next = () => {
        if (call.cancelled) return;
        if (i >= n) return call.end();
        const ok = call.write({
          text: `${call.request.text}-${i++}`,
          from: name,
          payload: call.request.payload,
        });
        if (ok) setImmediate(next);
        else call.once('drain', next);
      };
      next();
    },
    ClientStream(call: grpc.ServerReadableStream<Msg, Msg>, cb: grpc.sendUnaryData<Msg>) {
      state.calls.ClientStream++;
      const texts: string[] = [];
      call.on('data', (m: Msg) => texts.push(m.text));
      call.on('end', () => cb(null, { text: texts.join(','), from: name }));
    },
    Bidi(call: grpc.ServerDuplexStream<Msg, Msg>) {
      state.calls.Bidi++;
      call.on('data', (m: Msg) => call.write({ text: `echo:${m.text}`, from: name }));
      call.on('end', () => call.end());
    },
  });
  server.addService(proto.grpc.health.v1.Health.service, {
    Check(call: grpc.ServerUnaryCall<{ service: string }, unknown>, cb: grpc.sendUnaryData<unknown>) {
      if (call.request.service && call.request.service !== 'wharf.test.Echo')
        return cb({ code: grpc.status.NOT_FOUND, details: 'unknown service' });
      cb(null, { status: state.serving });
    },
  });
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (err, p) =>
      err ? reject(err) : resolve(p),
    ),
  );
  return Object.assign(state, { address: `127.0.0.1:${port}` });
}

export interface EchoClient {
  // biome-ignore lint/suspicious/noExplicitAny: the generated client.
  readonly raw: any;
  unary(msg: Msg, opts?: { deadlineMs?: number; metadata?: grpc.Metadata }): Promise<Msg>;
  serverStream(msg: Msg): Promise<Msg[]>;
  clientStream(msgs: Msg[]): Promise<Msg>;
  bidi(msgs: Msg[]): Promise<Msg[]>;
  close(): void;
}

/**
 * A client on one channel (one HTTP/2 connection) to `target`, sending `authority` as `:authority`
 * (the convention host). With `ca`, over TLS.
 */
export function echoClient(target: string, authority: string, ca?: string): EchoClient {
  const creds = ca ? grpc.credentials.createSsl(Buffer.from(ca)) : grpc.credentials.createInsecure();
  const raw = new proto.wharf.test.Echo(target, creds, {
    'grpc.default_authority': authority,
    ...(ca ? { 'grpc.ssl_target_name_override': authority } : {}),
    'grpc.max_receive_message_length': 16 * 1024 * 1024,
    // One connection: every call of this client shares it (what kube-proxy can only balance once).
    'grpc.use_local_subchannel_pool': 1,
  });
  return {
    raw,
    unary: (msg, opts = {}) =>
      new Promise((resolve, reject) => {
        const deadline = opts.deadlineMs ? new Date(Date.now() + opts.deadlineMs) : undefined;
        raw.Unary(
          msg,
          opts.metadata ?? new grpc.Metadata(),
          deadline ? { deadline } : {},
          (err: Error, res: Msg) => (err ? reject(err) : resolve(res)),
        );
      }),
    serverStream: (msg) =>
      new Promise((resolve, reject) => {
        const out: Msg[] = [];
        const call = raw.ServerStream(msg);
        call.on('data', (m: Msg) => out.push(m));
        call.on('error', reject);
        call.on('end', () => resolve(out));
      }),
    clientStream: (msgs) =>
      new Promise((resolve, reject) => {
        const call = raw.ClientStream((err: Error, res: Msg) => (err ? reject(err) : resolve(res)));
        for (const m of msgs) call.write(m);
        call.end();
      }),
    bidi: (msgs) =>
      new Promise((resolve, reject) => {
        const out: Msg[] = [];
        const call = raw.Bidi();
        call.on('data', (m: Msg) => {
          out.push(m);
          // One at a time: each answer arrives before the next message is sent.
          if (out.length < msgs.length) call.write(msgs[out.length]);
          else call.end();
        });
        call.on('error', reject);
        call.on('end', () => resolve(out));
        call.write(msgs[0]);
      }),
    close: () => raw.close(),
  };
}

/** One length-prefixed gRPC message frame of an Echo `Msg` (text and count only), by hand. */
export function msgFrame(text: string, count = 0): Buffer {
  const parts = [Buffer.from([0x0a, Buffer.byteLength(text)]), Buffer.from(text)];
  if (count > 0) {
    const varint: number[] = [];
    for (let v = count; ; v >>>= 7) {
      if (v < 0x80) {
        varint.push(v);
        break;
      }
      varint.push((v & 0x7f) | 0x80);
    }
    parts.push(Buffer.from([0x18, ...varint]));
  }
  const msg = Buffer.concat(parts);
  const head = Buffer.alloc(5);
  head.writeUInt32BE(msg.length, 1);
  return Buffer.concat([head, msg]);
}

export { grpc };
