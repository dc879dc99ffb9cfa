// Machine description for the results files.

import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import os from 'node:os';
import { version, which } from './install.ts';

export function machineInfo(repoDir: string): string[] {
  const cpu = /model name\s*:\s*(.+)/.exec(readFileSync('/proc/cpuinfo', 'utf8'))?.[1] ?? os.cpus()[0]?.model;
  let distro = '';
  try {
    distro = /PRETTY_NAME="([^"]+)"/.exec(readFileSync('/etc/os-release', 'utf8'))?.[1] ?? '';
  } catch {}
  const git = spawnSync('git', ['-C', repoDir, 'rev-parse', '--short', 'HEAD'], {
    encoding: 'utf8',
  }).stdout.trim();
  const tools = ['nginx', 'haproxy', 'wrk'].map((t) => (which(t) ? version(t) : `${t}: not installed`));
  return [
    `${os.cpus().length} vCPU ${cpu}, ${(os.totalmem() / 2 ** 30).toFixed(1)} GiB RAM, ${distro}, kernel ${os.release()}`,
    `node ${process.version}; ${tools.join('; ')}`,
    `git ${git || 'unknown'}; load average at start ${os
      .loadavg()
      .map((x) => x.toFixed(2))
      .join(' ')}`,
  ];
}
