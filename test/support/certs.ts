// Test certificates made with the openssl CLI: one CA, leaf certificates for given DNS names.

import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface TestCa {
  readonly dir: string;
  readonly caCert: string;
  readonly caPem: string;
  /** Writes `<name>.crt` and `<name>.key` for the DNS names; returns their paths. */
  leaf(
    name: string,
    dnsNames: string[],
    opts?: { days?: number; into?: string },
  ): { cert: string; key: string };
}

function openssl(args: string[], cwd: string): void {
  execFileSync('openssl', args, { cwd, stdio: 'pipe' });
}

export function makeCa(): TestCa {
  const dir = mkdtempSync(join(tmpdir(), 'wharf-ca-'));
  openssl(
    [
      'req',
      '-x509',
      '-newkey',
      'ec',
      '-pkeyopt',
      'ec_paramgen_curve:P-256',
      '-nodes',
      '-keyout',
      'ca.key',
      '-out',
      'ca.crt',
      '-days',
      '2',
      '-subj',
      '/CN=Wharf Test CA',
    ],
    dir,
  );
  const caCert = join(dir, 'ca.crt');
  return {
    dir,
    caCert,
    caPem: readFileSync(caCert, 'utf8'),
    leaf(name, dnsNames, opts = {}) {
      const out = opts.into ?? dir;
      const key = join(out, `${name}.key`);
      const csr = join(dir, `${name}.csr`);
      const cert = join(out, `${name}.crt`);
      const ext = join(dir, `${name}.ext`);
      writeFileSync(ext, `subjectAltName=${dnsNames.map((d) => `DNS:${d}`).join(',')}\n`);
      openssl(
        [
          'req',
          '-newkey',
          'ec',
          '-pkeyopt',
          'ec_paramgen_curve:P-256',
          '-nodes',
          '-keyout',
          key,
          '-out',
          csr,
          '-subj',
          `/CN=${dnsNames[0]}`,
        ],
        dir,
      );
      openssl(
        [
          'x509',
          '-req',
          '-in',
          csr,
          '-CA',
          'ca.crt',
          '-CAkey',
          'ca.key',
          '-CAcreateserial',
          '-out',
          cert,
          '-days',
          String(opts.days ?? 1),
          '-extfile',
          ext,
        ],
        dir,
      );
      return { cert, key };
    },
  };
}
