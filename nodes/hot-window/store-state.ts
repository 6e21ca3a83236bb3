import type { StoreState, StoreStateListener } from './window-store';

/** Holds a store's connection state and tells listeners when it changes. */
export class StoreStateHolder {
  private current: StoreState;
  private readonly listeners = new Set<StoreStateListener>();

  constructor(initial: StoreState) {
    this.current = initial;
  }

  get state(): StoreState {
    return this.current;
  }

  set(state: StoreState, error?: Error): void {
    if (state === this.current && !error) return;
    this.current = state;
    for (const l of [...this.listeners]) {
      // A listener's bug must not break the store's event handling.
      try {
        l(state, error);
      } catch {
        /* ignored */
      }
    }
  }

  on(listener: StoreStateListener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  clear(): void {
    this.listeners.clear();
  }
}
