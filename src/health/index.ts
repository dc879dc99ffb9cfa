// Public surface of health/: what main.ts wires and the proxy calls.

export { type LoopDeps, ProbeLoop, type ProbeReport } from './loop.ts';
export {
  netProber,
  ProbeCancel,
  type ProbeResult,
  type Prober,
  type ProbeSignal,
  type ProbeTarget,
} from './prober.ts';
export { type EjectListener, HealthService, type HealthServiceOptions } from './service.ts';
export { holdOutMs } from './state.ts';
export { type Clock, systemClock, systemTimers, type TimerHandle, type Timers } from './time.ts';
