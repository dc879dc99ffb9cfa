// Makes sure nginx, haproxy and wrk are installed (Debian packages of the same names). A tool that
// cannot be installed is reported with a reason; the caller skips the targets that need it.

import { spawnSync } from 'node:child_process';

export function which(cmd: string): string | undefined {
  const r = spawnSync('sh', ['-c', `command -v ${cmd}`], { encoding: 'utf8' });
  const p = r.stdout.trim();
  return r.status === 0 && p ? p : undefined;
}

export function version(cmd: string): string {
  const args: Record<string, string[]> = { nginx: ['-v'], haproxy: ['-v'], wrk: ['-v'], node: ['-v'] };
  const r = spawnSync(cmd, args[cmd] ?? ['--version'], { encoding: 'utf8', timeout: 5000 });
  return (
    `${r.stdout}${r.stderr}`
      .split('\n')
      .find((l) => l.trim())
      ?.trim() ?? 'unknown'
  );
}

/** Returns, for each missing tool that could not be installed, the reason. */
export function ensureTools(pkgs: string[]): Map<string, string> {
  const missing = pkgs.filter((p) => !which(p));
  const failed = new Map<string, string>();
  if (missing.length === 0) return failed;
  process.stderr.write(`[bench] installing ${missing.join(' ')} with apt-get\n`);
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  // Other jobs on the machine may hold the dpkg lock for a while: wait for it (bounded).
  const lock = ['-o', 'DPkg::Lock::Timeout=300'];
  const upd = spawnSync('apt-get', [...lock, 'update'], { encoding: 'utf8', env, timeout: 400_000 });
  if (upd.status !== 0) process.stderr.write(`[bench] apt-get update failed: ${upd.stderr.slice(-500)}\n`);
  for (const p of missing) {
    const r = spawnSync('apt-get', [...lock, 'install', '-y', '--no-install-recommends', p], {
      encoding: 'utf8',
      env,
      timeout: 600_000,
    });
    if (r.status !== 0 || !which(p)) {
      const why = (r.stderr || r.stdout || String(r.error ?? '')).trim().split('\n').slice(-2).join(' ');
      failed.set(p, `apt-get install ${p} failed: ${why || `exit ${r.status}`}`);
    }
  }
  return failed;
}
