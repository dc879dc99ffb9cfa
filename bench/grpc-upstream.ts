// Benchmark gRPC upstream: grpc-js serving the test Echo service (test/fixtures/grpc/echo.proto), as
// its own process. It writes how many calls it answered to COUNT_FILE every 200 ms, so the harness
// reads the per-instance share of calls without a side channel through the proxy.
//   node --import tsx bench/grpc-upstream.ts PORT NAME COUNT_FILE

import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import * as loader from '@grpc/proto-loader';

const [port, name, countFile] = [Number(process.argv[2]), process.argv[3] ?? 'g', process.argv[4]];
if (!Number.isInteger(port) || !countFile) {
  process.stderr.write('usage: grpc-upstream.ts PORT NAME COUNT_FILE\n');
  process.exit(2);
}
const def = loader.loadSync(join(import.meta.dirname, '..', 'test', 'fixtures', 'grpc', 'echo.proto'), {
  keepCase: true,
});
// biome-ignore lint/suspicious/noExplicitAny: built at run time from the .proto.
const proto = grpc.loadPackageDefinition(def) as any;
let calls = 0;
const server = new grpc.Server();
server.addService(proto.wharf.test.Echo.service, {
  Unary(call: grpc.ServerUnaryCall<{ text: string }, unknown>, cb: grpc.sendUnaryData<unknown>) {
    calls++;
    cb(null, { text: call.request.text, from: name });
  },
});
const flush = () => writeFileSync(countFile, String(calls));
setInterval(flush, 200).unref();
server.bindAsync(`127.0.0.1:${port}`, grpc.ServerCredentials.createInsecure(), (err) => {
  if (err) {
    process.stderr.write(`${err.message}\n`);
    process.exit(1);
  }
});
process.on('SIGTERM', () => {
  flush();
  server.tryShutdown(() => process.exit(0));
});
