// The checks of a config that need the filesystem: certificate files that exist, parse and match
// their keys, and the files Kubernetes discovery reads. `check-config` and `serve` run them before
// anything listens, so a typo in a path is a config error (exit 2) naming the field, not a stack
// trace at start. parseConfig stays free of I/O beyond reading the config file itself.

import { createPrivateKey, X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import type { Config } from './load.ts';

function readable(path: string): { text?: string; reason?: string } {
  try {
    return { text: readFileSync(path, 'utf8') };
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return { reason: 'no such file' };
    if (code === 'EACCES') return { reason: 'not readable by this user' };
    if (code === 'EISDIR') return { reason: 'a directory, not a file' };
    return { reason: (err as Error).message };
  }
}

/** `~/x` as the shell would expand it (kubeconfig paths are often written so). */
function expand(path: string): string {
  return path.startsWith('~/') ? `${homedir()}${path.slice(1)}` : path;
}

/** Every problem with the files the config names, as `field: "path": reason` lines. */
export function checkConfigFiles(config: Config): string[] {
  const issues: string[] = [];
  config.tls?.certificates.forEach((c, i) => {
    const at = `tls.certificates.${i}`;
    const cert = readable(c.cert);
    const key = readable(c.key);
    let x509: X509Certificate | undefined;
    if (cert.reason) issues.push(`${at}.cert: "${c.cert}": ${cert.reason}: expected a PEM certificate file`);
    else {
      try {
        x509 = new X509Certificate(cert.text ?? '');
      } catch {
        issues.push(
          `${at}.cert: "${c.cert}": not a certificate: expected a PEM file (-----BEGIN CERTIFICATE-----)`,
        );
      }
    }
    if (key.reason) {
      issues.push(`${at}.key: "${c.key}": ${key.reason}: expected the certificate's PEM private key file`);
      return;
    }
    let pkey: ReturnType<typeof createPrivateKey>;
    try {
      pkey = createPrivateKey(key.text ?? '');
    } catch {
      issues.push(
        `${at}.key: "${c.key}": not a private key: expected a PEM file (-----BEGIN PRIVATE KEY-----)`,
      );
      return;
    }
    if (x509 && !x509.checkPrivateKey(pkey)) {
      const subject = x509.subject.replace(/\n/g, ', ');
      issues.push(
        `${at}.key: "${c.key}": does not match the certificate ${c.cert} (${subject}): expected that certificate's private key`,
      );
    }
  });
  const k = config.kubernetes;
  if (k) {
    const file = (field: string, path: string | undefined, what: string) => {
      if (path === undefined) return;
      const r = readable(expand(path));
      if (r.reason) issues.push(`kubernetes.${field}: "${path}": ${r.reason}: expected ${what}`);
    };
    file('kubeconfig', k.kubeconfig, 'a kubeconfig file such as ~/.kube/config');
    file('token-file', k.tokenFile, 'a file holding the bearer token');
    file('ca-file', k.caFile, 'a PEM file with the apiserver CA');
  }
  return issues;
}
