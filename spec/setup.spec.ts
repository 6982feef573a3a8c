// Registers the root hooks (device teardown) for the whole run.
import { mochaHooks } from './helpers.js';
after(mochaHooks.afterAll);
