// ES module entry: the same adapters as the CommonJS one (one implementation).
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);
const outbox = require('./index.js');

export const { fromPrisma, fromPg, fromTypeORM, fromKysely, fromDrizzle, fromTransaction } = outbox;
export default outbox;
