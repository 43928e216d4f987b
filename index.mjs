// ES module entry: the same classes as the CommonJS entry (one module instance, one identity).
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);
const cjs = require('./index.js');

export const { EventPublisher, EventPublisherError, EventTypes } = cjs;
export default cjs;
