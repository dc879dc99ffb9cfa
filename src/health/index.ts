// INTERIM: replaced by the health helper's HealthService (branch `health`).
import type { HealthState, HealthStatus, HealthView } from '../model/health.ts';
import type { AttemptOutcome } from '../model/outcome.ts';
import type { EndpointId, RouteTable } from '../model/routes.ts';

export class HealthService implements HealthView {
  private readonly listeners = new Set<(id: EndpointId, reason: string) => void>();
  private readonly down = new Map<EndpointId, HealthStatus>();
  reconcile(_table: RouteTable): void {}
  report(o: AttemptOutcome): void {
    if (o.error === 'connect-refused') {
      this.down.set(o.endpoint, {
        state: 'unhealthy',
        reason: 'connect refused',
        ejected: true,
        since: Date.now(),
      });
      for (const l of this.listeners) l(o.endpoint, 'connect refused');
    }
  }
  onEjected(l: (id: EndpointId, reason: string) => void): () => void {
    this.listeners.add(l);
    return () => this.listeners.delete(l);
  }
  state(id: EndpointId): HealthState {
    return this.down.get(id)?.state ?? 'healthy';
  }
  status(id: EndpointId): HealthStatus | undefined {
    return this.down.get(id);
  }
  close(): void {}
}
