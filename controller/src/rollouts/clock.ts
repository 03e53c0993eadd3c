// The clock moved to common/src/clock.ts (the agent's upgrade watcher uses it too); kept for existing imports.
export * from '../../../common/src/clock.js';
