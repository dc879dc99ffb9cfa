// A Source the test publishes through by hand (the contract of src/model/source.ts).

import type { Problem } from '../../src/model/problem.ts';
import type { ProjectRecord } from '../../src/model/snapshot.ts';
import type { Source, SourceStatus, SourceUpdate } from '../../src/model/source.ts';

const NONE: readonly Problem[] = Object.freeze([]);

export class TestSource implements Source {
  status: SourceStatus = { state: 'synced' };
  private listener?: (u: SourceUpdate) => void;

  constructor(readonly name: string) {}

  publish(u: SourceUpdate): void {
    this.listener?.(u);
  }

  change(removed: ProjectRecord[], added: ProjectRecord[], problems: readonly Problem[] = NONE): void {
    this.publish({ reset: false, removed, added, problems });
  }

  reset(added: readonly ProjectRecord[], problems: readonly Problem[] = NONE): void {
    this.publish({ reset: true, removed: [], added, problems });
  }

  onUpdate(listener: (u: SourceUpdate) => void): () => void {
    this.listener = listener;
    return () => {};
  }

  onStatus(): () => void {
    return () => {};
  }

  start(): void {}

  async stop(): Promise<void> {}
}
