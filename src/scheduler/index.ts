// Public surface of the scheduler: the step loop and the contracts the HTTP layer and the engine meet at.

export type {
  Decoder,
  EndReason,
  Grammar,
  SamplingOptions,
  SlotEvent,
  StartOptions,
  StepResult,
  TokenProb,
  TokenProbs,
} from './decoder.ts';
export {
  type ClientWaiting,
  DEFAULT_PRIORITY,
  FairQueue,
  type FairQueueLimits,
  type QueueOverflow,
} from './fair-queue.ts';
export { Scheduler } from './scheduler.ts';
export { chooseSlot, commonPrefix, type IdleSlot, MIN_REUSE_PREFIX, type SlotChoice } from './slot-choice.ts';
export { StepTurns } from './step-turns.ts';
export type {
  GenerationHandlers,
  GenerationRequest,
  RequestEndReason,
  RequestHandle,
  RequestSummary,
  SchedulerObserver,
  SchedulerOptions,
  SlotSnapshot,
  StepStats,
} from './types.ts';
