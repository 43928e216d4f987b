// @hyvve/event-publisher/testing, ES module entry: the same classes as the CommonJS entry.
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);
const cjs = require('./index.js');

export const { createTestPublisher, TestPublisher } = cjs;
export default cjs;
