// The config file as Wharf re-reads it: on a change of its directory (editors and Kubernetes
// ConfigMaps replace files by rename, so the file itself cannot be watched) and on `reload()`
// (SIGHUP). A file whose bytes did not change is not parsed again; a bad file is rejected with a
// logged reason and the running config keeps serving. What a good new file changes is decided by
// planReload (reload.ts): fields that need a restart are logged, the live changes are handed to
// `apply`.

import { createHash } from 'node:crypto';
import { type FSWatcher, readFileSync, watch } from 'node:fs';
import { basename, dirname } from 'node:path';
import { type Config, ConfigError, loadConfig, type Overrides } from '../config/load.ts';
import type { Log } from '../util/log.ts';
import { planReload, type ReloadPlan } from './reload.ts';

const hashOf = (text: string) => createHash('sha256').update(text).digest('hex');

export class ConfigFile {
  private hash = '';
  private watcher?: FSWatcher;
  private timer?: NodeJS.Timeout;

  constructor(
    readonly path: string,
    private readonly o: {
      readonly overrides?: Overrides;
      readonly log: Log;
      /** The config running now. */
      readonly current: () => Config;
      /** A good new file, planned against the running config. */
      readonly apply: (plan: ReloadPlan) => void;
    },
  ) {
    try {
      this.hash = hashOf(readFileSync(path, 'utf8'));
    } catch {}
  }

  /** Re-reads the file; false when it cannot be read or is rejected (the running config stays). */
  reload(): boolean {
    const path = this.path;
    const log = this.o.log;
    let text: string;
    try {
      text = readFileSync(path, 'utf8');
    } catch (err) {
      log('error', 'config reload failed; keeping the running config', {
        file: path,
        reason: (err as Error).message,
      });
      return false;
    }
    const hash = hashOf(text);
    if (hash === this.hash) return true;
    let next: Config;
    try {
      next = loadConfig(path, this.o.overrides);
    } catch (err) {
      const issues = err instanceof ConfigError ? err.issues : [(err as Error).message];
      log('error', 'config reload rejected; keeping the running config', { file: path, issues });
      return false;
    }
    this.hash = hash;
    const plan = planReload(this.o.current(), next);
    if (plan.restart.length > 0)
      log('warn', 'config changes that need a restart were not applied', { fields: plan.restart });
    this.o.apply(plan);
    log('info', 'config reloaded', { file: path, applied: plan.live });
    return true;
  }

  /** Reloads 100 ms after the last change in the file's directory. */
  watch(): this {
    const name = basename(this.path);
    try {
      this.watcher = watch(dirname(this.path), (_event, file) => {
        if (file && file !== name && file !== '..data') return;
        clearTimeout(this.timer);
        this.timer = setTimeout(() => this.reload(), 100);
      });
      this.watcher.on('error', (err) =>
        this.o.log('warn', 'config watch failed; SIGHUP still reloads', { reason: err.message }),
      );
    } catch (err) {
      this.o.log('warn', 'cannot watch config file; SIGHUP still reloads', {
        reason: (err as Error).message,
      });
    }
    return this;
  }

  close(): void {
    this.watcher?.close();
    clearTimeout(this.timer);
  }
}
