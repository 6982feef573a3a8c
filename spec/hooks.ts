// Root hooks for every mocha run: tear the shared GPU device down after the last spec.
export { mochaHooks } from './helpers.js';
