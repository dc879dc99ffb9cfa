// The event bus between producers (health, routing, discovery) and consumers (logs, metrics, SSE).
// Synchronous and cheap: producers never wait for consumers.

import type { WharfEvent } from '../model/events.ts';

export type Unsubscribe = () => void;

export class EventBus<E = WharfEvent> {
  private readonly listeners = new Set<(e: E) => void>();
  private readonly onError: (err: unknown) => void;

  constructor(onError: (err: unknown) => void = () => {}) {
    this.onError = onError;
  }

  on(listener: (e: E) => void): Unsubscribe {
    this.listeners.add(listener);
    return () => {
      this.listeners.delete(listener);
    };
  }

  emit(e: E): void {
    for (const l of this.listeners) {
      // One broken consumer must not starve the others, nor throw into the producer.
      try {
        l(e);
      } catch (err) {
        this.onError(err);
      }
    }
  }

  get size(): number {
    return this.listeners.size;
  }
}
