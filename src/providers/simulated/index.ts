/** The built-in simulated provider: in-process (SimulatedProvider) and over HTTP (startSimServer). */
export { SimEngine, type SimAttempt, type SimEngineOptions, type SimRequestTracker, type SimStats } from './engine.js';
export { SimulatedProvider, type SimulatedProviderOptions } from './provider.js';
export { startSimServer, type SimServer, type SimServerOptions } from './server.js';
export { SimError, simOutcomeSchema, type SimOutcome } from './outcomes.js';
export { cosineSimilarity, embedText } from './embeddings.js';
