// Runs `bin/wharf.js` as a child process, the way users and CI run it.

import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';

export const WHARF_BIN = fileURLToPath(new URL('../../bin/wharf.js', import.meta.url));

export interface Child {
  readonly proc: ChildProcess;
  stdout: string;
  stderr: string;
  /** Resolves when stderr shows the start line; returns the listen and admin ports. */
  started(): Promise<{ port: number; admin: number }>;
  exit(): Promise<number | null>;
}

export function runWharf(
  args: string[],
  env: NodeJS.ProcessEnv = {},
  as?: { readonly uid: number; readonly gid: number },
): Child {
  const proc = spawn(process.execPath, [WHARF_BIN, ...args], {
    env: { ...process.env, ...env },
    stdio: 'pipe',
    ...as,
  });
  const child: Child = {
    proc,
    stdout: '',
    stderr: '',
    started: () =>
      new Promise((resolve, reject) => {
        const check = () => {
          // The application log goes to stdout (JSON lines) unless a log directory is configured.
          const line = (child.stderr + child.stdout)
            .split('\n')
            .find((l) => l.includes('"msg":"wharf started"'));
          const m = line && (JSON.parse(line) as { listen: string; admin: string });
          if (m) {
            proc.stderr?.off('data', check);
            proc.stdout?.off('data', check);
            resolve({ port: Number(m.listen.split(':').pop()), admin: Number(m.admin.split(':').pop()) });
          }
        };
        proc.stderr?.on('data', check);
        proc.stdout?.on('data', check);
        proc.once('exit', (code) =>
          reject(new Error(`wharf exited with ${code} before starting:\n${child.stderr}`)),
        );
        check();
      }),
    exit: async () => {
      if (proc.exitCode !== null) return proc.exitCode;
      const [code] = await once(proc, 'exit');
      return code as number | null;
    },
  };
  proc.stdout?.on('data', (c) => {
    child.stdout += c;
  });
  proc.stderr?.on('data', (c) => {
    child.stderr += c;
  });
  return child;
}
